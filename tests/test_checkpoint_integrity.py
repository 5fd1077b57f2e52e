"""Checkpoints are self-contained and refuse damage: bundled ones load from anywhere and hold no machine path; a
damaged, truncated or incomplete copy is a CheckpointError naming the file; exports are published atomically."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from helpers import subprocess_env
from streamdit_jax.training import export
from streamdit_jax.restore import (INTEGRITY_FILE, CheckpointError, check_finite_params, load_for_inference,
                                            verify_integrity)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINTS = os.path.join(ROOT, "experiments", "checkpoints")
BUNDLED = ["shapes_minilm", "shapes_latent", "shapes_small", "shapes_small_distilled"]


def largest_state_file(root):
    files = [os.path.join(d, n) for d, _, ns in os.walk(os.path.join(root, "checkpoints")) for n in ns
             if f"{os.sep}state{os.sep}" in os.path.join(d, n)]
    return max(files, key=os.path.getsize)


@pytest.fixture
def latent_copy(tmp_path):
    path = tmp_path / "copy"
    shutil.copytree(os.path.join(CHECKPOINTS, "shapes_latent"), path)
    return str(path)


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_checkpoint_loads_the_same_parameters_after_its_directory_moves(name, tmp_path):
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(os.path.join(CHECKPOINTS, name), moved)
    cfg, _, params = load_for_inference(os.path.join(CHECKPOINTS, name))
    moved_cfg, _, moved_params = load_for_inference(str(moved))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(moved_params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if cfg.autoencoder:  # the moved copy decodes with its own autoencoder, not the original's
        assert moved_cfg.autoencoder == os.path.join(str(moved), "autoencoder")
    assert dataclasses.replace(moved_cfg, autoencoder="") == dataclasses.replace(cfg, autoencoder="")


@pytest.mark.parametrize("name", BUNDLED + ["shapes_ae"])
def test_a_bundled_checkpoint_holds_no_path_of_the_machine_that_made_it(name):
    # TRAINING.md is prose: its reproduction commands name example workdirs (--workdir=/tmp/...) on purpose
    root = os.path.join(CHECKPOINTS, name)
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            if n == "TRAINING.md":
                continue
            data = open(os.path.join(dirpath, n), "rb").read()
            for needle in (b"/tmp/", b"/home/", b"/work/", ROOT.encode()):
                assert needle not in data, (os.path.join(dirpath, n), needle)


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_checkpoint_matches_its_integrity_record(name):
    assert verify_integrity(os.path.join(CHECKPOINTS, name)) is True


def test_flipped_bytes_in_a_state_file_are_refused_naming_the_file(latent_copy):
    victim = largest_state_file(latent_copy)
    with open(victim, "r+b") as f:  # XOR 4 KiB in the middle of the largest array file
        f.seek(os.path.getsize(victim) // 2)
        block = bytearray(f.read(4096))
        f.seek(os.path.getsize(victim) // 2)
        f.write(bytes(b ^ 0x5A for b in block))
    with pytest.raises(CheckpointError, match=f"damaged: '{victim}' does not match its sha256"):
        load_for_inference(latent_copy)


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_truncated_or_empty_state_file_is_refused_naming_the_file(latent_copy, damage):
    victim = largest_state_file(latent_copy)
    with open(victim, "r+b") as f:
        f.truncate(0 if damage == "empty" else os.path.getsize(victim) // 2)
    with pytest.raises(CheckpointError, match=f"'{victim}' does not match its sha256"):
        load_for_inference(latent_copy)
    os.remove(os.path.join(latent_copy, INTEGRITY_FILE))  # a training workdir has no record: the restore itself fails
    with pytest.raises(CheckpointError, match="state' cannot be restored"):
        load_for_inference(latent_copy)


def test_a_missing_config_item_is_refused_naming_the_file(latent_copy):
    config = os.path.join(latent_copy, "checkpoints", "850", "config", "metadata")
    os.remove(config)
    with pytest.raises(CheckpointError, match=f"incomplete: '{config}' is missing"):
        load_for_inference(latent_copy)
    os.remove(os.path.join(latent_copy, INTEGRITY_FILE))
    with pytest.raises(CheckpointError, match=f"'{config}' is missing or unreadable"):
        load_for_inference(latent_copy)


def test_non_finite_parameters_are_refused_naming_the_parameter():
    params = {"blocks": {"w": np.ones((4, 4), np.float32)}, "head": np.asarray([1.0, np.nan, np.inf], np.float32)}
    with pytest.raises(CheckpointError, match=r"\['head'\] \(2 non-finite of 3\)"):
        check_finite_params(params, "somewhere")
    check_finite_params({"w": np.ones(3, np.float32)}, "somewhere")  # finite: no error


@pytest.mark.slow
def test_stream_refuses_a_damaged_checkpoint_with_exit_2_naming_the_file(latent_copy, tmp_path):
    victim = largest_state_file(latent_copy)
    with open(victim, "r+b") as f:
        f.seek(1000)
        f.write(b"\0" * 4096)
    out = subprocess.run([sys.executable, "-m", "experiments.stream", f"--checkpoint={latent_copy}",
                          f"--output={tmp_path / 'out.mp4'}", "--num_frames=16"],
                         cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert victim in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_an_export_is_self_contained_and_sealed(tmp_path):
    # re-exporting a bundled export: the same path as a training run's export (load -> cast -> save -> seal)
    out = tmp_path / "out"
    info = export.export_for_inference(os.path.join(CHECKPOINTS, "shapes_small_distilled"), str(out), "float16")
    assert info["source"] == "shapes_small_distilled"
    assert verify_integrity(str(out))
    saved = json.load(open(out / "checkpoints" / str(info["step"]) / "config" / "metadata"))
    assert saved["distill"]["teacher"] == "" and saved["init_from"] == ""
    for dirpath, _, filenames in os.walk(out):
        for n in filenames:
            assert str(tmp_path).encode() not in open(os.path.join(dirpath, n), "rb").read(), n


def test_publishing_an_export_swaps_it_in_and_leaves_no_staging_behind(tmp_path):
    output = tmp_path / "export"
    first = export.staging_directory(str(output))
    assert oct(os.stat(first).st_mode & 0o777) == oct(0o777 & ~current_umask())  # not mkdtemp's 0700
    open(os.path.join(first, "version"), "w").write("1")
    export.publish(first, str(output))
    second = export.staging_directory(str(output))
    open(os.path.join(second, "version"), "w").write("2")
    export.publish(second, str(output))
    assert open(output / "version").read() == "2"
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_a_killed_exports_staging_directory_is_removed_by_the_next_export(tmp_path):
    output = tmp_path / "export"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".export-export-{int(dead.stdout)}-abc123"
    live = tmp_path / f".export-export-{os.getppid()}-def456"  # a running export (our parent process) is kept
    other = tmp_path / f".export-other-{int(dead.stdout)}-ghi789"  # another output's: not ours to judge
    for d in (stale, live, other):
        d.mkdir()
    staging = export.staging_directory(str(output))
    assert not stale.exists() and live.exists() and other.exists() and os.path.isdir(staging)


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_the_readme_distill_command_runs_from_a_teacher_moved_to_another_directory(tmp_path):
    """The teacher's saved config names its autoencoder relative to itself, so a moved (or freshly cloned) teacher
    still distils; the student gets its own copy of that autoencoder and saves a config relative to itself."""
    teacher = tmp_path / "moved_teacher"
    shutil.copytree(os.path.join(CHECKPOINTS, "shapes_latent"), teacher)
    student = tmp_path / "student"
    out = subprocess.run([sys.executable, "-m", "experiments.distill", "--config=experiments/configs/distill_shapes.py",
                          f"--workdir={student}", f"--teacher={teacher}", "--config.total_steps=1"],
                         cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    saved = json.load(open(student / "checkpoints" / "1" / "config" / "metadata"))
    assert saved["autoencoder"] == "autoencoder" and os.path.isdir(student / "autoencoder")
    assert saved["distill"]["teacher"] == str(teacher)


def test_a_training_checkpoint_with_a_truncated_file_is_refused_naming_the_file_before_orbax_reads_it(tmp_path):
    """Training checkpoints record every file's size when saved (digests would stall training): a truncated file is
    named, on restore for inference and on resume."""
    from streamdit_jax.checkpoint import SIZES_FILE, Checkpointer
    ckpt = Checkpointer(str(tmp_path), async_save=True)
    state = {"w": np.arange(4096, dtype=np.float32), "b": np.ones(3, np.float32)}
    ckpt.save(1, state, {"note": "config"}, {})
    ckpt.close()
    step_dir = tmp_path / "checkpoints" / "1"
    assert (step_dir / SIZES_FILE).is_file()
    from streamdit_jax.restore import verify_step_sizes
    assert verify_step_sizes(str(step_dir)) is True
    victim = max((p for p in step_dir.rglob("*") if p.is_file() and "state" in p.parts), key=lambda p: p.stat().st_size)
    os.truncate(victim, victim.stat().st_size // 2)
    with pytest.raises(CheckpointError, match=f"damaged: '{victim}' holds"):
        verify_step_sizes(str(step_dir))
