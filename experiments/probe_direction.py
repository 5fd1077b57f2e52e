r"""Does the model draw the motion its prompt names? Constant-prompt streams, the same noise seeds under each word.

  python -m experiments.probe_direction [--checkpoint=DIR] [--seeds=6] [--num_frames=64] [--output_json=OUT.json]

For each direction word and each seed i, one stream of ``--num_frames`` frames with the constant prompt
"a <colour> <shape> moving <word>" (objects cycle through a fixed list) and noise seed ``base_seed + i``, so the rows
share their noise and differ only in the word. Prints, per word, the evaluator's direction accuracy over the first
``--start_frames`` frames (the stream's T2V start) and over the rest, and the motion seen every 4 frames
(L/R/U/D, '-' none), from streamdit_jax.evaluation.direction_probe. It tells apart models whose 256-frame averages
look alike: a model whose word sets only the motion's axis draws the same letters for left and right.
"""
from __future__ import annotations

import json

from absl import app, flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import build_streamer, define_stream_flags, fail, quiet_library_logs
from streamdit_jax.evaluation.direction_probe import format_probe, probe

define_stream_flags()
flags.DEFINE_integer("seeds", 6, "Noise seeds per direction word.", lower_bound=1)
flags.DEFINE_integer("base_seed", 500, "Seed of the first stream; stream i uses base_seed + i.")
flags.DEFINE_integer("num_frames", 64, "Frames per stream.", lower_bound=8)
flags.DEFINE_integer("start_frames", 16, "Frames counted as the stream's start.", lower_bound=1)
flags.DEFINE_string("output_json", "", "Where to write the results ('' = do not write).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    quiet_library_logs()
    if not FLAGS.start_frames < FLAGS.num_frames:
        fail(f"--start_frames={FLAGS.start_frames} must be < --num_frames={FLAGS.num_frames}")
    _, streamer = build_streamer(FLAGS.checkpoint, FLAGS.chunk, FLAGS.steps_per_chunk, FLAGS.reference_frames,
                                 FLAGS.guidance, warmup_frames=FLAGS.warmup_frames, text_encoder=FLAGS.text_encoder)
    result = probe(streamer, FLAGS.seeds, FLAGS.num_frames, FLAGS.start_frames, FLAGS.base_seed)
    print(format_probe(result, FLAGS.start_frames))
    if FLAGS.output_json:
        with open(FLAGS.output_json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
