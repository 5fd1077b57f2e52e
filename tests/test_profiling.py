"""Profiler traces of chosen steps: --profile_steps parsing, ProfileWindow's start/stop around real jitted steps (the
trace names exactly the window's steps), closing an unfinished window, the Streamer's buffer steps, and the train /
stream command lines."""
import glob
import gzip
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers import subprocess_env, tiny_model
from streamdit_jax.models.autoencoder import PatchAutoencoder
from streamdit_jax.partition import Partition
from streamdit_jax.profiling import ProfileWindow, parse_profile_steps
from streamdit_jax.sampling.stream import Streamer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trace_files(log_dir, pattern="*.xplane.pb"):
    return glob.glob(os.path.join(str(log_dir), "plugins", "profile", "*", pattern))


def traced_steps(log_dir, name):
    """The step numbers of the StepTraceAnnotation events called ``name`` in the (single) trace under ``log_dir``."""
    path, = trace_files(log_dir, "*.trace.json.gz")
    with gzip.open(path) as f:
        events = json.load(f)["traceEvents"]
    return sorted(int(e["args"]["step_num"]) for e in events
                  if e.get("name") == name and "step_num" in e.get("args", {}))


def run_steps(window, steps, name="train"):
    f = jax.jit(lambda x: jnp.tanh(x @ x) + 1.0)
    x = jnp.ones((32, 32))
    for step in steps:
        window.before_step(step)
        with window.annotate(step, name):
            x = f(x)
        window.after_step(step, x)
    return x


# ------------------------------------------------------------------------------------------------------ parsing

def test_parse_profile_steps_accepts_start_stop_and_empty():
    assert parse_profile_steps("2:4") == (2, 4)
    assert parse_profile_steps("0:1") == (0, 1)
    assert parse_profile_steps(" 10 : 20 ") == (10, 20)
    assert parse_profile_steps("") is None
    assert parse_profile_steps(None) is None


@pytest.mark.parametrize("text", ["4:2", "3:3", "a:b", "3", "-1:2", "1:2:3", "1.5:3", ":4", "2:"])
def test_parse_profile_steps_rejects_anything_else_naming_the_value_and_the_form(text):
    with pytest.raises(ValueError) as e:
        parse_profile_steps(text)
    message = str(e.value)
    assert f"--profile_steps={text!r}" in message and "START:STOP" in message and "0 <= START < STOP" in message


def test_a_window_refuses_bad_steps_and_a_missing_log_dir():
    with pytest.raises(ValueError):
        ProfileWindow((3, 3), "/tmp/x")
    with pytest.raises(ValueError):
        ProfileWindow((0, 2), None)


# ---------------------------------------------------------------------------------------------- ProfileWindow

def test_a_window_traces_exactly_its_steps_of_a_real_jitted_loop(tmp_path):
    window = ProfileWindow((2, 4), str(tmp_path))
    run_steps(window, range(6))
    assert not window.running and window.written and window.done
    assert len(trace_files(tmp_path)) == 1
    assert traced_steps(tmp_path, "train") == [2, 3]
    window.close()  # nothing left to stop; a second close too
    window.close()
    jax.profiler.start_trace(str(tmp_path / "after"))  # the profiler is free again
    jax.profiler.stop_trace()


def test_no_window_writes_nothing_and_never_calls_the_profiler(tmp_path, monkeypatch):
    def refuse(*a, **kw):
        raise AssertionError("the profiler was called without a profile window")

    monkeypatch.setattr(jax.profiler, "start_trace", refuse)
    monkeypatch.setattr(jax.profiler, "stop_trace", refuse)
    monkeypatch.setattr(jax.profiler, "StepTraceAnnotation", refuse)
    window = ProfileWindow(None, str(tmp_path))
    run_steps(window, range(6))
    window.close()
    assert not window.written and os.listdir(tmp_path) == []


def test_close_writes_an_unfinished_window_and_frees_the_profiler(tmp_path):
    window = ProfileWindow((2, 10), str(tmp_path / "a"))
    run_steps(window, range(5))
    assert window.running
    window.close()
    assert not window.running and window.written
    assert traced_steps(tmp_path / "a", "train") == [2, 3, 4]
    window.close()  # safe twice
    run_steps(window, range(5, 8))  # a closed window never starts again
    assert not window.running
    jax.profiler.start_trace(str(tmp_path / "b"))  # would raise if the first trace were still running
    jax.profiler.stop_trace()
    assert len(trace_files(tmp_path / "b")) == 1


def test_a_loop_that_starts_inside_the_window_traces_from_its_first_step(tmp_path):
    window = ProfileWindow((2, 6), str(tmp_path))  # e.g. training resumed at step 4
    run_steps(window, range(4, 8))
    assert traced_steps(tmp_path, "train") == [4, 5]


# --------------------------------------------------------------------------------------------------- Streamer

def test_the_streamer_traces_its_emitting_buffer_steps_counted_from_0_after_the_warm_up(tmp_path):
    model = tiny_model(seed=1, latent_channels=12, window=(4, 2, 2))
    graphdef, params = nnx.split(model)
    ae = PatchAutoencoder(2)
    window = ProfileWindow((1, 3), str(tmp_path))
    streamer = Streamer(graphdef, params, Partition.from_buffer(8, 2, 1), (4, 4, 12),
                        ae, warmup_frames=4, profile=window)
    frames = np.concatenate(list(streamer.frames("a red circle moving left", 10)))
    assert frames.shape[0] == 10
    window.close()
    assert window.written
    assert traced_steps(tmp_path, "buffer_step") == [1, 2]


# ---------------------------------------------------------------------------------------------- command lines

def cli(module, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def error_line(r):
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_stream_cli_writes_a_trace_of_the_chosen_chunks_next_to_the_output(tmp_path):
    out = tmp_path / "out.mp4"
    r = cli("experiments.stream", "--num_frames=12", f"--output={out}", "--profile_steps=1:3")
    assert r.returncode == 0, r.stderr[-3000:]
    profile = tmp_path / "out.mp4.profile"
    assert f"wrote the profile trace to {profile}" in r.stderr
    assert len(trace_files(profile)) == 1
    assert traced_steps(profile, "buffer_step") == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("module,args", [
    ("experiments.train", ["--config=experiments/configs/shapes_tiny.py"]),
    ("experiments.distill", ["--config=experiments/configs/distill_shapes.py"]),
    ("experiments.stream", []),
])
def test_a_bad_profile_steps_flag_exits_2_with_one_line_naming_it(tmp_path, module, args):
    r = cli(module, *args, f"--output={tmp_path / 'out.mp4'}" if module == "experiments.stream" else
            f"--workdir={tmp_path}", "--profile_steps=5")
    assert r.returncode == 2, r.stderr[-3000:]
    assert "--profile_steps='5'" in error_line(r) and "START:STOP" in error_line(r)
    assert not os.path.exists(tmp_path / "profile")
