r"""Evaluate a checkpoint by streaming prompt schedules and scoring the generated frames alone.

  python -m experiments.evaluate --checkpoint=DIR [--schedules=FILE.jsonl] [--output_json=OUT.json]

Each line of FILE is {"seed": int, "num_frames": int, "prompts": {"0": "...", "64": "..."}}; without --schedules,
20 seeded random one-object schedules of 256 frames with a switch every 64 frames. Prints the evaluator's table and
writes OUT.json with present, colour, shape, direction, switch_lag_frames, drift_points, settled_drift_points,
frames_per_second (and the per-window details). drift_points = last window - first window; settled_drift_points
leaves out the frames each obeyed switch took to show (its lag), which plain drift counts as decay whenever the
first window holds no switch and the last does.
"""
from __future__ import annotations

import json
import time

import numpy as np
from absl import app, flags

from experiments.streaming import build_streamer, define_stream_flags, fail, quiet_library_logs
from streamdit_jax.evaluation import evaluate_many, format_table
from streamdit_jax.evaluation.schedule import default_schedules
from streamdit_jax.sampling.stream import normalize_schedule

define_stream_flags()
flags.DEFINE_string("schedules", "", "JSONL of {seed, num_frames, prompts}; '' = 20 random schedules.")
flags.DEFINE_string("output_json", "", "Where to write the results ('' = do not write).")
flags.DEFINE_integer("window", 64, "Frames per window for the drift metrics.")
FLAGS = flags.FLAGS


def read_schedules(path: str) -> list[dict]:
    if not path:
        return default_schedules()
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
            item = {"seed": int(d["seed"]), "num_frames": int(d["num_frames"]),
                    "prompts": {int(k): str(v) for k, v in d["prompts"].items()}}
            normalize_schedule(item["prompts"])
            if item["num_frames"] < 1:
                raise ValueError(f"num_frames={item['num_frames']} must be >= 1")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            fail(f"--schedules line {i} is malformed ({e}): {line[:120]!r}")
        out.append(item)
    if not out:
        fail(f"--schedules={path!r} holds no schedules")
    return out


def main(argv):
    del argv
    quiet_library_logs()
    schedules = read_schedules(FLAGS.schedules)
    _, streamer = build_streamer(FLAGS.checkpoint, FLAGS.chunk, FLAGS.steps_per_chunk, FLAGS.reference_frames,
                                 FLAGS.guidance, warmup_frames=FLAGS.warmup_frames)
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
        with open(FLAGS.output_json, "w") as f:
            json.dump(result, f, indent=1, default=float)


if __name__ == "__main__":
    app.run(main)
