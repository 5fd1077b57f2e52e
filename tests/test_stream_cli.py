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
from streamdit_jax.configs import DataConfig, TrainConfig

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


@pytest.mark.slow
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


@pytest.mark.slow
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
@pytest.mark.slow
def test_bad_inputs_exit_2_with_a_message_naming_the_value(checkpoint, tmp_path, args, needle):
    base = {"--checkpoint": checkpoint, "--output": str(tmp_path / "o.gif"), "--num_frames": "4"}
    for a in args:
        base[a.split("=")[0]] = a.split("=", 1)[1]
    r = run_cli(*[f"{k}={v}" for k, v in base.items()])
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert needle in r.stderr


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_evaluate_cli_rejects_a_malformed_schedule_line_naming_it(checkpoint, tmp_path):
    schedules = tmp_path / "bad.jsonl"
    schedules.write_text('{"seed": 1, "num_frames": 12, "prompts": {"0": "a red circle moving left"}}\nnot json\n')
    env = subprocess_env()
    r = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--checkpoint={checkpoint}",
                        f"--schedules={schedules}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "line 2" in r.stderr


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_video_to_video_cli_restyles_an_input_gif_and_stops_with_it(checkpoint, tmp_path):
    from streamdit_jax import shapes_world as shapes
    clip = shapes.render(3, 11, shapes.ShapesWorldConfig(frame_size=16))
    src = tmp_path / "in.gif"
    iio.imwrite(src, clip.frames, duration=100, loop=0)
    out = tmp_path / "v2v.gif"
    r = run_cli(f"--checkpoint={checkpoint}", "--prompts=0:a blue square moving up", f"--input_video={src}",
                "--num_frames=0", "--strength=0.5", f"--output={out}", "--steps_per_chunk=1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert iio.imread(out).shape == (11, 16, 16, 3) and "video-to-video" in r.stdout


@pytest.mark.slow
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


@pytest.mark.slow
def test_an_inference_export_holds_the_ema_params_in_float16_and_streams(checkpoint, tmp_path):
    import numpy as np
    from streamdit_jax.restore import load_for_inference
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


@pytest.mark.slow
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
    from streamdit_jax.configs import DistillConfig, TrainConfig
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
    from streamdit_jax.restore import CheckpointError

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


# ---- output that cannot be written, numbers out of range: refused before the checkpoint is read -------------------

NOWHERE = "/nonexistent/run"  # a checkpoint that cannot be loaded: a check made after loading would name it instead


def run_tool(tool, *args, **kw):
    return subprocess.run([sys.executable, "-m", f"experiments.{tool}", *args], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("args,needle", [
    (["--output=/tmp/nonexistent/dir/out.mp4"], "--output='/tmp/nonexistent/dir/out.mp4': directory "
                                                 "'/tmp/nonexistent/dir' does not exist"),
    (["--output=/proc/out.mp4"], "--output='/proc/out.mp4': directory '/proc' is not writable"),
    (["--output={tmp}/d.mp4"], "--output='{tmp}/d.mp4' is a directory"),
    (["--fps=-3"], "--fps=-3 must be an integer number of frames per second in [1, 120] for a .mp4 output"),
    (["--fps=0"], "--fps=0 must be"),
    (["--output={tmp}/o.gif", "--fps=0"], "--fps=0 must be an integer number of frames per second in [1, 50] for a "
                                          ".gif output"),
    (["--output={tmp}/o.gif", "--fps=60"], "--fps=60 must be"),
    (["--num_frames=-1"], "--num_frames=-1 must be an int >= 0"),
    (["--seed=-1"], "--seed=-1 must be an int in [0, 4294967295]"),
    (["--guidance=nan"], "--guidance=nan must be a finite number in [1, 100]"),
    (["--guidance=1e9"], "--guidance=1000000000.0 must be"),
    (["--guidance=0.5"], "--guidance=0.5 must be"),
    (["--strength=0"], "--strength=0.0 must be in (0, 1]"),
    (["--chunk=0"], "--chunk=0 must be an int >= 1"),
    (["--steps_per_chunk=0"], "--steps_per_chunk=0 must be an int >= 1"),
    (["--reference_frames=-1"], "--reference_frames=-1 must be an int >= 0"),
    (["--warmup_frames=-1"], "--warmup_frames=-1 must be an int >= 0"),
    (["--input_video=/nonexistent/in.mp4"], "--input_video='/nonexistent/in.mp4' is not a file"),
])
def test_stream_refuses_bad_output_and_numbers_with_exit_2_before_reading_the_checkpoint(tmp_path, args, needle):
    (tmp_path / "d.mp4").mkdir()
    base = {"--checkpoint": NOWHERE, "--output": str(tmp_path / "o.mp4"), "--num_frames": "4"}
    for a in args:
        key, value = a.split("=", 1)
        base[key] = value.format(tmp=tmp_path)
    r = run_tool("stream", *[f"{k}={v}" for k, v in base.items()])
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert needle.format(tmp=tmp_path) in r.stderr and NOWHERE not in r.stderr, r.stderr[-2000:]
    assert "wrote" not in r.stdout and not (tmp_path / "o.mp4").exists()


@pytest.mark.slow
@pytest.mark.parametrize("args,lines,needle", [
    (["--output_json=/tmp/nonexistent/e.json"], None, "--output_json='/tmp/nonexistent/e.json': directory "
                                                      "'/tmp/nonexistent' does not exist"),
    (["--output_json=/proc/e.json"], None, "directory '/proc' is not writable"),
    (["--output_json={tmp}"], None, "--output_json='{tmp}' is a directory"),
    (["--window=0"], None, "--window=0 must be an int >= 1"),
    (["--guidance=nan"], None, "--guidance=nan must be a finite number in [1, 100]"),
    (["--schedules={tmp}/s.jsonl"], ['{"seed": -1, "num_frames": 8, "prompts": {"0": "a red circle"}}'],
     "line 1 is malformed (seed=-1 must be an int in [0, 4294967295]"),
    (["--schedules={tmp}/s.jsonl"], ['{"seed": 1, "num_frames": 8, "prompts": {"0": "x"}, '
                                     '"sampling": {"guidance": NaN}}'],
     "line 1 is malformed (sampling.guidance=nan must be a finite number in [1, 100]"),
    (["--schedules={tmp}/s.jsonl"], ['{"seed": 1, "num_frames": 8, "prompts": {"0": "x"}, "sampling": {"chunks": 2}}'],
     "sampling has unknown keys ['chunks']"),
    (["--schedules={tmp}/s.jsonl"], ['{"seed": 1, "num_frames": 8, "prompts": {"0": "a red circle moving up"}, '
                                     '"sampling": {"chunk": 2}}', '{"seed": 2, "num_frames": 8, "prompts": '
                                     '{"0": "a red circle moving up"}, "sampling": {"chunk": 4}}'],
     "lines 1 and 2 hold different sampling settings"),
    (["--schedules={tmp}/s.jsonl"], ['{"seed": 1, "num_frames": 8, "prompts": {"0": "a red circle moving up", '
                                     '"4": "hello"}}'], "line 1 is malformed (schedule entry 4: caption 'hello'"),
])
def test_evaluate_refuses_bad_output_numbers_and_records_with_exit_2_before_reading_the_checkpoint(tmp_path, args,
                                                                                                   lines, needle):
    if lines:
        (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    r = run_tool("evaluate", f"--checkpoint={NOWHERE}", *[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert needle.format(tmp=tmp_path) in r.stderr and NOWHERE not in r.stderr, r.stderr[-2000:]


def test_the_progressive_writer_refuses_a_path_or_fps_it_cannot_write_naming_it(tmp_path):
    from streamdit_jax.sampling.video_io import ProgressiveWriter
    for kw, needle in [(dict(path="/tmp/nonexistent/dir/o.mp4"), "directory '/tmp/nonexistent/dir' does not exist"),
                       (dict(path="/proc/o.mp4"), "directory '/proc' is not writable"),
                       (dict(path=str(tmp_path)), "unsupported extension ''"),
                       (dict(path=str(tmp_path / "o.mp4"), fps=0), "fps=0 must be an integer"),
                       (dict(path=str(tmp_path / "o.mp4"), fps=-3), "fps=-3 must be"),
                       (dict(path=str(tmp_path / "o.mp4"), fps=2.5), "fps=2.5 must be"),
                       (dict(path=str(tmp_path / "o.gif"), fps=60), "fps=60 must be an integer number of frames per "
                                                                    "second in [1, 50] for a .gif")]:
        with pytest.raises(ValueError) as e:
            ProgressiveWriter(**kw)
        assert needle in str(e.value)
    (tmp_path / "d.mp4").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        ProgressiveWriter(str(tmp_path / "d.mp4"))


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
def test_the_progressive_writer_reads_its_file_back_at_close_and_returns_the_frames_it_holds(tmp_path, ext):
    import numpy as np
    from streamdit_jax.sampling.video_io import ProgressiveWriter
    rng = np.random.default_rng(0)
    w = ProgressiveWriter(str(tmp_path / f"o{ext}"), fps=8)
    w.write(rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8))
    w.write(np.zeros((20, 16, 16, 3), np.uint8))  # identical frames: a GIF stores them as one longer frame
    w.write(rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8))
    assert w.close() == 28 and w.close() == 28
    assert ProgressiveWriter(str(tmp_path / f"empty{ext}")).close() == 0


def test_a_write_that_ffmpeg_fails_raises_naming_the_output_instead_of_passing_silently(tmp_path, monkeypatch):
    import imageio_ffmpeg
    import numpy as np
    from streamdit_jax.sampling.video_io import ProgressiveWriter, VideoWriteError
    fake = tmp_path / "ffmpeg"  # the real ffmpeg for probing and reading; writing fails as on a full disk
    fake.write_text(f'#!/bin/sh\ncase "$*" in *rawvideo*) echo "fake ffmpeg: No space left" >&2; exit 1;; '
                    f'*) exec {imageio_ffmpeg.get_ffmpeg_exe()} "$@";; esac\n')
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    w = ProgressiveWriter(str(tmp_path / "o.mp4"))
    with pytest.raises(VideoWriteError, match="o.mp4"):
        w.write(np.zeros((4, 16, 16, 3), np.uint8))
        w.close()


def test_load_streamer_checks_its_arguments_before_reading_the_checkpoint():
    from streamdit_jax.sampling.pretrained import load_streamer
    for kw, needle in [(dict(guidance=float("nan")), r"guidance=nan must be a finite number in \[1, 100\]"),
                       (dict(guidance=1e9), r"guidance=1000000000.0 must be"),
                       (dict(guidance=0.5), r"guidance=0.5 must be"),
                       (dict(chunk=0), r"chunk=0 must be an int >= 1"),
                       (dict(steps_per_chunk=1.5), r"steps_per_chunk=1.5 must be an int >= 1"),
                       (dict(reference_frames=-1), r"reference_frames=-1 must be an int >= 0"),
                       (dict(warmup_frames=True), r"warmup_frames=True must be an int >= 0"),
                       (dict(queue_size=0), r"queue_size=0 must be an int >= 1")]:
        with pytest.raises(ValueError, match=needle):  # not CheckpointError naming the missing checkpoint
            load_streamer(NOWHERE, **kw)


# ---- run-time results: the file is checked, the count is the written one, a record's sampling is replayed --------

@pytest.mark.slow
def test_stream_exits_1_naming_the_output_when_ffmpeg_fails_and_never_says_wrote(checkpoint, tmp_path):
    import imageio_ffmpeg
    fake = tmp_path / "ffmpeg"
    fake.write_text(f'#!/bin/sh\ncase "$*" in *rawvideo*) echo "fake ffmpeg: No space left" >&2; exit 1;; '
                    f'*) exec {imageio_ffmpeg.get_ffmpeg_exe()} "$@";; esac\n')
    fake.chmod(0o755)
    out = tmp_path / "o.mp4"
    r = subprocess.run([sys.executable, "-m", "experiments.stream", f"--checkpoint={checkpoint}", f"--output={out}",
                        "--num_frames=6", "--steps_per_chunk=1"], cwd=REPO, env={**subprocess_env(),
                       "IMAGEIO_FFMPEG_EXE": str(fake)}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    assert f"error: output {str(out)!r}" in r.stderr and "wrote" not in r.stdout


@pytest.mark.slow
def test_live_mode_reports_the_frames_in_its_file_when_interrupted_while_pacing(checkpoint, tmp_path):
    import json
    import re
    out = tmp_path / "live.gif"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.stream", f"--checkpoint={checkpoint}", "--live",
                             "--num_frames=0", "--steps_per_chunk=1", "--fps=1", "--prompts=0:a red circle moving left",
                             f"--output={out}"], cwd=REPO, env=subprocess_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "type a prompt" in line:  # the first chunk is written; the next waits ~2 s for its time at 1 frame/s
            break
    time.sleep(1.0)  # ... by now it has been decoded (and counted by the streamer's stats), but not written
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(seen)[-1000:] + stderr[-2000:]
    reported = int(re.search(r"wrote \S+: (\d+) frames", stdout).group(1))
    assert reported == iio.imread(out, index=None).shape[0] >= 2
    assert json.loads((tmp_path / "live.gif.schedule.jsonl").read_text())["num_frames"] == reported


@pytest.mark.slow
def test_evaluate_replays_a_live_records_sampling_block_and_explicit_flags_win(checkpoint, tmp_path):
    import json
    long = "a red circle moving left and a blue square moving up"  # 52 bytes: the tiny model reads 47
    sampling = {"reference_frames": 0, "chunk": 4, "steps_per_chunk": 1, "guidance": 1.0, "warmup_frames": 0}
    schedules = tmp_path / "live.gif.schedule.jsonl"  # as experiments.stream --live writes it; not the defaults
    schedules.write_text(json.dumps({"seed": 3, "num_frames": 12, "prompts": {
        "0": long, "4": "a blue square moving up", "8": long}, "sampling": sampling}) + "\n")
    out = tmp_path / "r.json"
    r = run_tool("evaluate", f"--checkpoint={checkpoint}", f"--schedules={schedules}", f"--output_json={out}",
                 "--window=4", "--guidance=2")
    assert r.returncode == 0, r.stderr[-2000:]
    # the record's chunk, steps, warm-up (the checkpoint's defaults: c=2, s=4, 8 frames); the explicit flag's guidance
    assert json.loads(out.read_text())["sampling"] == dict(sampling, guidance=2.0)
    assert "--guidance=2.0 overrides the schedules' recorded guidance=1.0" in r.stderr
    warned = [line for line in r.stderr.splitlines() if line.startswith("warning: prompt")]
    assert len(warned) == 1 and repr(long) in warned[0] and "first 47 bytes" in warned[0], r.stderr[-2000:]
