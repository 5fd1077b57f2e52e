r"""Evaluate a checkpoint by streaming prompt schedules and scoring the generated frames alone.

  python -m experiments.evaluate --checkpoint=DIR [--schedules=FILE.jsonl] [--output_json=OUT.json]

Each line of FILE is {"seed": int, "num_frames": int, "prompts": {"0": "...", "64": "..."}}, optionally with
"sampling": {"chunk", "steps_per_chunk", "guidance", "reference_frames", "warmup_frames"} (any of them), as
`experiments.stream --live` records it: those settings are then used, so a replay reproduces the live stream exactly
(with the same --checkpoint). A sampling flag given on the command line wins over the record (a note on stderr
names each such difference: the replay then differs from the recorded stream); unset keys and unset flags take the
checkpoint's defaults. One run streams every schedule with one sampler, so all lines must hold the same sampling
block (or none). Without --schedules, 20 seeded random one-object schedules of 256 frames with a switch every 64
frames. Prints the evaluator's table and writes OUT.json with present, colour, shape, direction,
switch_lag_frames, drift_points, settled_drift_points, frames_per_second, sampling (the settings used) and the
per-window details. drift_points = last window - first window; settled_drift_points leaves out the frames each
obeyed switch took to show (its lag), which plain drift counts as decay whenever the first window holds no switch
and the last does.

Bad input exits with code 2 and a message naming the value, before the checkpoint is read: a malformed schedule
line (or sampling block, or a prompt the evaluator cannot score: not in the shapes-world grammar), --output_json whose
directory does not exist or is not writable, --window < 1, and the sampling flags by experiments.stream's rules.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
from absl import app, flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import (SAMPLING_FLAGS, build_streamer, check_sampling_flags, checked,
                                   define_stream_flags, fail, quiet_library_logs)
from streamdit_jax.fileio import write_text_atomic
from streamdit_jax.evaluation import evaluate_many, format_table
from streamdit_jax.evaluation.schedule import default_schedules, expand_schedule
from streamdit_jax.sampling.pretrained import check_sampling_args
from streamdit_jax.sampling.stream import check_int, check_seed, normalize_schedule
from streamdit_jax.sampling.video_io import check_writable

define_stream_flags()
flags.DEFINE_string("schedules", "", "JSONL of {seed, num_frames, prompts[, sampling]}; '' = 20 random schedules.")
flags.DEFINE_string("output_json", "", "Where to write the results ('' = do not write).")
flags.DEFINE_integer("window", 64, "Frames per window for the drift metrics (>= 1).")
FLAGS = flags.FLAGS


def read_schedules(path: str) -> list[dict]:
    """The schedules of ``path`` (default_schedules() for ''), each {seed, num_frames, prompts, sampling (a dict or
    None)}, or exit 2 naming the bad line."""
    if not path:
        return [dict(item, sampling=None) for item in default_schedules()]
    out = []
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        fail(f"--schedules={path!r} cannot be read: {e}")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            item = {"line": i, "seed": check_seed(d["seed"]), "num_frames": int(d["num_frames"]),
                    "prompts": {int(k): str(v) for k, v in d["prompts"].items()},
                    "sampling": read_sampling(d.get("sampling"))}
            normalize_schedule(item["prompts"])
            if item["num_frames"] < 1:
                raise ValueError(f"num_frames={item['num_frames']} must be >= 1")
            expand_schedule(item["prompts"], item["num_frames"])  # scorable: else the scoring fails after streaming
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            fail(f"--schedules line {i} is malformed ({e}): {line[:120]!r}")
        out.append(item)
    if not out:
        fail(f"--schedules={path!r} holds no schedules")
    return out


def read_sampling(block) -> dict | None:
    """A record's "sampling" block (Streamer.sampling_settings(): any of SAMPLING_FLAGS), checked by the library's
    rules; ValueError names the bad key or value."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ValueError(f"sampling must be an object with keys from {SAMPLING_FLAGS}, got {block!r}")
    unknown = sorted(set(block) - set(SAMPLING_FLAGS))
    if unknown:
        raise ValueError(f"sampling has unknown keys {unknown}; valid: {SAMPLING_FLAGS}")
    check_sampling_args(prefix="sampling.", **block)
    return dict(block)


def sampling_choices(schedules: list[dict]) -> dict:
    """{flag: value or None (the checkpoint's default)}: an explicit flag, else the records' sampling block, which
    must be the same on every line (one sampler streams them all); exit 2 naming two lines that differ."""
    first = schedules[0]
    for item in schedules[1:]:
        if item["sampling"] != first["sampling"]:
            fail(f"--schedules lines {first.get('line')} and {item.get('line')} hold different sampling settings "
                 f"({first['sampling']} vs {item['sampling']}); one run streams every schedule with one sampler: "
                 f"split the file")
    recorded = first["sampling"] or {}
    choices = {}
    for name in SAMPLING_FLAGS:
        if FLAGS[name].present:
            choices[name] = FLAGS[name].value
            if name in recorded and recorded[name] != FLAGS[name].value:
                print(f"note: --{name}={FLAGS[name].value} overrides the schedules' recorded {name}={recorded[name]} "
                      f"(the replay differs from the recorded stream)", file=sys.stderr)
        else:
            choices[name] = recorded.get(name)
    if recorded:
        print(f"sampling settings from the schedules' record: {recorded}", file=sys.stderr)
    return choices


def main(argv):
    del argv
    quiet_library_logs()
    check_sampling_flags()
    checked(check_int, FLAGS.window, "--window", 1, meaning="frames per window of the drift metrics")
    if FLAGS.output_json:
        checked(check_writable, FLAGS.output_json, "--output_json")
    schedules = read_schedules(FLAGS.schedules)
    choices = sampling_choices(schedules)
    _, streamer = build_streamer(FLAGS.checkpoint, choices["chunk"], choices["steps_per_chunk"],
                                 choices["reference_frames"], choices["guidance"],
                                 warmup_frames=choices["warmup_frames"])
    videos, frames_total, seconds = [], 0, 0.0
    for i, item in enumerate(schedules):
        t = time.perf_counter()
        frames = np.concatenate(list(streamer.frames(item["prompts"], item["num_frames"], item["seed"])))
        seconds += time.perf_counter() - t if i else 0.0  # the first stream includes compilation
        frames_total += len(frames) if i else 0
        videos.append((frames, item["prompts"]))
        print(f"schedule {i + 1}/{len(schedules)}: {len(frames)} frames", flush=True)
    result = evaluate_many(videos, window=FLAGS.window)
    result["frames_per_second"] = frames_total / seconds if seconds else float("nan")
    result["sampling"] = streamer.sampling_settings()
    print(format_table(result))
    print(f"frames_per_second (after the first, compiling, stream): {result['frames_per_second']:.1f}")
    if FLAGS.output_json:
        write_text_atomic(FLAGS.output_json, json.dumps(result, indent=1, default=float))
        print(f"wrote {FLAGS.output_json}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
