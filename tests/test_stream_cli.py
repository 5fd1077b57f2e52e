"""experiments.stream: progressive output that survives a kill, live prompts from stdin that replay exactly, and named
errors with exit code 2."""
import os
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import jax
import pytest

from helpers import subprocess_env

from streamdit_jax import parallel
from streamdit_jax.checkpoint import Checkpointer
from streamdit_jax.models import get_model_config
from streamdit_jax.training import steps
from streamdit_jax.training.config import DataConfig, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An (untrained) tiny checkpoint written by the real Checkpointer: the CLI path does not depend on quality."""
    workdir = str(tmp_path_factory.mktemp("ckpt"))
    cfg = TrainConfig(model=get_model_config("tiny", latent_channels=12, window=(4, 2, 2)),
                      data=DataConfig(frame_size=16, clip_len=16), buffer_len=8, chunk_sizes=(1, 2, 4, 8))
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    _, _, state, _ = steps.create_train_state(cfg, mesh)
    ck = Checkpointer(workdir, async_save=False)
    ck.save(0, state, cfg.to_dict(), {})
    ck.close()
    return workdir


def run_cli(*args, **kw):
    env = subprocess_env()
    return subprocess.run([sys.executable, "-m", "experiments.stream", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def test_a_killed_stream_leaves_a_playable_mp4(checkpoint, tmp_path):
    out = tmp_path / "live.mp4"
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, "-m", "experiments.stream", f"--checkpoint={checkpoint}",
                             "--prompts=0:a red circle moving left", "--num_frames=0", f"--output={out}",
                             "--steps_per_chunk=1", "--fps=8"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 20000):
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)  # no chance to finalise anything
    proc.wait()
    frames = iio.imread(out)
    assert frames.ndim == 4 and frames.shape[0] >= 8 and frames.shape[1:] == (16, 16, 3)


def test_gif_output_has_exactly_num_frames_and_library_info_logs_stay_quiet(checkpoint, tmp_path):
    out = tmp_path / "s.gif"
    args = (f"--checkpoint={checkpoint}", "--prompts=0:a red circle moving left;6:a blue square moving up",
            "--num_frames=13", f"--output={out}", "--steps_per_chunk=1")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert iio.imread(out).shape[0] == 13 and "13 frames" in r.stdout
    assert "checkpoint_manager.py" not in r.stderr  # orbax's INFO lines about the checkpoint read
    r = run_cli(*args, "--verbosity=0")  # ... which the user can ask for
    assert r.returncode == 0 and "checkpoint_manager.py" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("args,needle", [
    (["--checkpoint=/nonexistent/run"], "/nonexistent/run"),
    (["--prompts=abc"], "'abc' is malformed"),
    (["--prompts= "], "--prompts is empty"),
    (["--prompts=4:a red circle moving left"], "no prompt at frame 0"),
    (["--chunk=3"], "chunk=3 is not a chunk size"),
    (["--output=x.avi"], "'.avi'"),
    (["--input_video=/nonexistent/in.mp4"], "/nonexistent/in.mp4"),
    (["--input_video=README.md"], "README.md"),
    (["--input_video=README.md", "--strength=1.5"], "--strength=1.5"),
    (["--live=true", "--prompts=0:a red circle moving left;4:a blue square moving up"], "switches at frames [4]"),
])
def test_bad_inputs_exit_2_with_a_message_naming_the_value(checkpoint, tmp_path, args, needle):
    base = {"--checkpoint": checkpoint, "--output": str(tmp_path / "o.gif"), "--num_frames": "4"}
    for a in args:
        base[a.split("=")[0]] = a.split("=", 1)[1]
    r = run_cli(*[f"{k}={v}" for k, v in base.items()])
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert needle in r.stderr


def test_a_live_session_switches_on_a_typed_prompt_and_its_schedule_record_replays_it_exactly(checkpoint, tmp_path):
    import json

    out, replay = tmp_path / "live.gif", tmp_path / "replay.gif"
    common = (f"--checkpoint={checkpoint}", "--num_frames=48", "--steps_per_chunk=1", "--fps=24")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.stream", *common, "--live",
                             "--prompts=0:a red circle moving left", f"--output={out}"], cwd=REPO, env=subprocess_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # text mode splits tqdm's carriage returns into lines too
        seen.append(line)
        if "type a prompt" in line:  # the first chunk is out: the typed prompt lands mid-stream
            break
    proc.stdin.write("a blue square moving up\n")
    proc.stdin.flush()
    stdout, stderr = proc.communicate(timeout=300)  # closes stdin: the stream goes on with the last prompt
    assert proc.returncode == 0, "".join(seen)[-1000:] + stderr[-2000:]
    record = json.loads((tmp_path / "live.gif.schedule.jsonl").read_text())
    switch = [int(f) for f in record["prompts"]][1]
    assert record["prompts"] == {"0": "a red circle moving left", str(switch): "a blue square moving up"}
    assert 2 <= switch < 48 and record["num_frames"] == 48 and record["seed"] == 0
    assert record["sampling"]["steps_per_chunk"] == 1 and "live session's schedule" in stdout
    assert "real time at 24 frames/s" in stdout
    prompts = ";".join(f"{f}:{p}" for f, p in record["prompts"].items())
    r = run_cli(*common, f"--prompts={prompts}", f"--output={replay}")
    assert r.returncode == 0, r.stderr[-2000:]
    live_frames, replayed = iio.imread(out, index=None), iio.imread(replay, index=None)
    assert live_frames.shape == replayed.shape and (live_frames == replayed).all()


def test_evaluate_cli_scores_schedules_and_writes_the_documented_keys(checkpoint, tmp_path):
    schedules = tmp_path / "s.jsonl"
    schedules.write_text('{"seed": 1, "num_frames": 12, "prompts": {"0": "a red circle moving left", '
                         '"6": "a blue circle moving left"}}\n{"seed": 2, "num_frames": 8, "prompts": '
                         '{"0": "a white square moving up"}}\n')
    out = tmp_path / "r.json"
    env = subprocess_env()
    r = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--checkpoint={checkpoint}",
                        f"--schedules={schedules}", f"--output_json={out}", "--steps_per_chunk=1", "--window=4"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import json
    result = json.loads(out.read_text())
    for key in ("present", "colour", "shape", "direction", "switch_lag_frames", "drift_points", "frames_per_second"):
        assert key in result
    assert result["frames"] == 20 and result["videos"] == 2
    # unset flags took the checkpoint's defaults (trained with caption dropout: CFG 3, c=2; a warm-up of one
    # 8-frame buffer), the set one was kept
    assert result["sampling"] == {"reference_frames": 0, "chunk": 2, "steps_per_chunk": 1, "guidance": 3.0,
                                  "warmup_frames": 8}


def test_evaluate_cli_rejects_a_malformed_schedule_line_naming_it(checkpoint, tmp_path):
    schedules = tmp_path / "bad.jsonl"
    schedules.write_text('{"seed": 1, "num_frames": 12, "prompts": {"0": "a red circle moving left"}}\nnot json\n')
    env = subprocess_env()
    r = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--checkpoint={checkpoint}",
                        f"--schedules={schedules}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "line 2" in r.stderr


def test_a_checkpoint_whose_config_does_not_match_this_code_exits_2_naming_it(checkpoint, tmp_path):
    import json
    import shutil
    bad = tmp_path / "bad_ckpt"
    shutil.copytree(checkpoint, bad)
    configs = [p for p in bad.rglob("*") if p.is_file() and p.parent.name == "config" and p.name == "metadata"]
    assert configs, list(bad.rglob("*"))
    for p in configs:  # a config from another version of the code: an unknown key
        d = json.loads(p.read_text())
        d["model"]["attention_dropout"] = 0.1
        p.write_text(json.dumps(d))
    r = run_cli(f"--checkpoint={bad}", f"--output={tmp_path / 'o.gif'}", "--num_frames=4")
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "does not match" in r.stderr and "attention_dropout" in r.stderr


def test_a_checkpoint_whose_arrays_do_not_match_its_config_exits_2(checkpoint, tmp_path):
    import json
    import shutil
    bad = tmp_path / "wide_ckpt"
    shutil.copytree(checkpoint, bad)
    for p in [p for p in bad.rglob("*") if p.is_file() and p.parent.name == "config" and p.name == "metadata"]:
        d = json.loads(p.read_text())
        d["model"]["width"] = 64  # the stored arrays are width 48
        p.write_text(json.dumps(d))
    r = run_cli(f"--checkpoint={bad}", f"--output={tmp_path / 'o.gif'}", "--num_frames=4")
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "do not match" in r.stderr


def test_video_to_video_cli_restyles_an_input_gif_and_stops_with_it(checkpoint, tmp_path):
    from streamdit_jax.data import shapes
    clip = shapes.render(3, 11, shapes.ShapesWorldConfig(frame_size=16))
    src = tmp_path / "in.gif"
    iio.imwrite(src, clip.frames, duration=100, loop=0)
    out = tmp_path / "v2v.gif"
    r = run_cli(f"--checkpoint={checkpoint}", "--prompts=0:a blue square moving up", f"--input_video={src}",
                "--num_frames=0", "--strength=0.5", f"--output={out}", "--steps_per_chunk=1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert iio.imread(out).shape == (11, 16, 16, 3) and "video-to-video" in r.stdout


def test_demo_streams_to_mp4_and_gif_and_prints_the_evaluators_table_without_fork_warnings(checkpoint, tmp_path):
    env = subprocess_env()
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "experiments.demo", f"--checkpoint={checkpoint}", "--num_frames=12",
                        "--prompts=0:a red circle moving right;6:a blue square moving up", f"--output={out}"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert iio.imread(f"{out}.gif").shape == (12, 16, 16, 3) and iio.imread(f"{out}.mp4").shape[0] == 12
    assert "present" in r.stdout and "direction" in r.stdout and "switch lag" in r.stdout
    assert "os.fork() was called" not in r.stderr  # starting ffmpeg is a fork + exec, not the deadlock JAX warns of


def test_an_inference_export_holds_the_ema_params_in_float16_and_streams(checkpoint, tmp_path):
    import numpy as np
    from streamdit_jax.training.restore import load_for_inference
    out = tmp_path / "export"
    env = subprocess_env()
    r = subprocess.run([sys.executable, "-m", "experiments.export", f"--workdir={checkpoint}", f"--output={out}"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "EMA" in (out / "TRAINING.md").read_text()
    cfg, _, full = load_for_inference(checkpoint)
    cfg2, _, exported = load_for_inference(str(out))
    assert cfg2 == cfg
    for a, b in zip(jax.tree.leaves(exported), jax.tree.leaves(full)):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b).astype(np.float16).astype(np.float32))
    r = run_cli(f"--checkpoint={out}", "--num_frames=5", f"--output={tmp_path / 'e.gif'}", "--steps_per_chunk=1")
    assert r.returncode == 0, r.stderr[-2000:]


def test_export_refuses_an_output_overlapping_the_run_and_a_failed_export_keeps_the_previous_one(checkpoint, tmp_path):
    def export(*args):
        return subprocess.run([sys.executable, "-m", "experiments.export", *args], cwd=REPO, env=subprocess_env(),
                              capture_output=True, text=True, timeout=300)

    for output in (checkpoint, os.path.join(checkpoint, "export")):
        r = export(f"--workdir={checkpoint}", f"--output={output}")
        assert r.returncode == 2 and "overlaps --workdir" in r.stderr, r.stderr[-2000:]
        assert os.path.isdir(os.path.join(checkpoint, "checkpoints", "0"))  # the run is untouched
    out = tmp_path / "export"
    assert export(f"--workdir={checkpoint}", f"--output={out}").returncode == 0
    before = sorted(p.name for p in out.rglob("*"))
    r = export(f"--workdir={checkpoint}", f"--output={out}", "--step=7")  # no such step
    assert r.returncode == 2 and "holds no step 7; saved steps: [0]" in r.stderr, r.stderr[-2000:]
    assert sorted(p.name for p in out.rglob("*")) == before  # the previous export is still whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]  # no staging left behind


def test_default_sampling_runs_a_student_unguided_in_one_step_and_a_teacher_with_cfg_only_if_it_knows_the_null_prompt():
    import dataclasses
    from streamdit_jax.sampling.pretrained import default_sampling
    from streamdit_jax.training.config import DistillConfig, TrainConfig
    teacher = TrainConfig(model=get_model_config("tiny", latent_channels=12), chunk_sizes=(1, 2, 4, 8, 16),
                          text_dropout=0.1)
    assert default_sampling(teacher) == (2, 4, 3.0)
    assert default_sampling(dataclasses.replace(teacher, text_dropout=0.0)) == (2, 4, 1.0)
    assert default_sampling(dataclasses.replace(teacher, chunk_sizes=(4, 8, 16))) == (4, 4, 3.0)
    student = dataclasses.replace(teacher, distill=DistillConfig(teacher="t", chunk=4, steps_per_chunk=16))
    assert default_sampling(student) == (4, 1, 1.0)


def test_load_streamer_takes_the_checkpoints_defaults_streams_frames_and_names_bad_choices(checkpoint):
    import numpy as np
    from streamdit_jax.sampling.pretrained import load_streamer
    from streamdit_jax.training.restore import CheckpointError

    cfg, streamer = load_streamer(checkpoint)
    # trained with caption dropout and c=2 available: CFG 3, c=2, s=4, a one-buffer warm-up (B - K = 8 frames)
    assert streamer.sampling_settings() == {"reference_frames": 0, "chunk": 2, "steps_per_chunk": 4,
                                            "guidance": 3.0, "warmup_frames": 8}
    assert streamer.pause_gc is False  # a library leaves the process-wide GC policy to its application
    frames = np.concatenate(list(streamer.frames({0: "a red circle moving left", 4: "a blue square moving up"}, 10)))
    assert frames.shape == (10, cfg.data.frame_size, cfg.data.frame_size, 3) and frames.dtype == np.uint8
    _, paper_start = load_streamer(checkpoint, chunk=4, steps_per_chunk=1, guidance=1.0, warmup_frames=0)
    assert paper_start.sampling_settings() == {"reference_frames": 0, "chunk": 4, "steps_per_chunk": 1,
                                               "guidance": 1.0, "warmup_frames": 0}
    with pytest.raises(ValueError, match=r"chunk=3 is not a chunk size this model was trained with: \(1, 2, 4, 8\)"):
        load_streamer(checkpoint, chunk=3)
    with pytest.raises(ValueError, match="invalid partition"):
        load_streamer(checkpoint, reference_frames=9)
    with pytest.raises(CheckpointError, match="/nonexistent/run"):
        load_streamer("/nonexistent/run")
