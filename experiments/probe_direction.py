r"""Does the model draw the motion its prompt names? Constant-prompt streams, the same noise seeds under each word.

  python -m experiments.probe_direction [--checkpoint=DIR] [--seeds=6] [--num_frames=64] [--output_json=OUT.json]

For each direction word and each seed i, one stream of ``--num_frames`` frames with the constant prompt
"a <colour> <shape> moving <word>" (objects cycle through a fixed list) and noise seed ``base_seed + i``, so the rows
share their noise and differ only in the word. Prints, per word, the evaluator's direction accuracy over the first
``--start_frames`` frames (the stream's T2V start) and over the rest, and the motion seen every 4 frames
(L/R/U/D, '-' none). This is what told apart models whose 256-frame averages looked alike (WORKSPACE.md "Session 7"):
a model whose word sets only the motion's axis draws the same letters for left and right.
"""
from __future__ import annotations

import json

import numpy as np
from absl import app, flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import build_streamer, define_stream_flags, fail, quiet_library_logs
from streamdit_jax import shapes_world as shapes
from streamdit_jax.evaluation import shapes_metrics

define_stream_flags()
flags.DEFINE_integer("seeds", 6, "Noise seeds per direction word.", lower_bound=1)
flags.DEFINE_integer("base_seed", 500, "Seed of the first stream; stream i uses base_seed + i.")
flags.DEFINE_integer("num_frames", 64, "Frames per stream.", lower_bound=8)
flags.DEFINE_integer("start_frames", 16, "Frames counted as the stream's start.", lower_bound=1)
flags.DEFINE_string("output_json", "", "Where to write the results ('' = do not write).")
FLAGS = flags.FLAGS

OBJECTS = (("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "circle"), ("white", "square"),
           ("cyan", "triangle"), ("magenta", "circle"))
LETTERS = "".join(m[0].upper() for m in shapes.MOTIONS)  # L R U D


def motion_letters(pred_motion: np.ndarray, every: int = 4) -> str:
    """The seen motion of every ``every``-th frame as L/R/U/D ('-': none)."""
    return "".join("-" if m == shapes_metrics.NO_MOTION else LETTERS[m] for m in np.asarray(pred_motion)[::every])


def probe(streamer, seeds: int, num_frames: int, start_frames: int, base_seed: int = 500) -> dict:
    """{word: {"start": acc, "later": acc, "motion": [letters per seed]}} over constant-prompt streams."""
    if not 0 < start_frames < num_frames:
        raise ValueError(f"start_frames={start_frames} must be in [1, num_frames={num_frames})")
    out = {}
    for word in shapes.MOTIONS:
        start, later, motion = [], [], []
        for i in range(seeds):
            colour, shape = OBJECTS[i % len(OBJECTS)]
            schedule = {0: f"a {colour} {shape} moving {word}"}
            frames = np.concatenate(list(streamer.frames(schedule, num_frames, base_seed + i)))
            scores = shapes_metrics.score_frames(frames, schedule)
            start.append(scores.direction[:start_frames].mean())
            later.append(scores.direction[start_frames:].mean())
            motion.append(motion_letters(scores.pred_motion[:, 0]))
        out[word] = {"start": float(np.mean(start)), "later": float(np.mean(later)), "motion": motion}
    return out


def format_probe(result: dict, start_frames: int) -> str:
    lines = [f"word    first {start_frames:3d}  later   motion every 4 frames, one stream per seed"]
    for word, r in result.items():
        lines.append(f"{word:6s}  {100 * r['start']:8.1f}  {100 * r['later']:5.1f}   {' '.join(r['motion'])}")
    return "\n".join(lines)


def main(argv):
    del argv
    quiet_library_logs()
    if not FLAGS.start_frames < FLAGS.num_frames:
        fail(f"--start_frames={FLAGS.start_frames} must be < --num_frames={FLAGS.num_frames}")
    _, streamer = build_streamer(FLAGS.checkpoint, FLAGS.chunk, FLAGS.steps_per_chunk, FLAGS.reference_frames,
                                 FLAGS.guidance, warmup_frames=FLAGS.warmup_frames)
    result = probe(streamer, FLAGS.seeds, FLAGS.num_frames, FLAGS.start_frames, FLAGS.base_seed)
    print(format_probe(result, FLAGS.start_frames))
    if FLAGS.output_json:
        with open(FLAGS.output_json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
