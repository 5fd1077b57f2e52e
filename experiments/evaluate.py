r"""Evaluate a checkpoint by streaming prompt schedules and scoring the generated frames alone.

  python -m experiments.evaluate --checkpoint=DIR [--schedules=FILE.jsonl] [--output_json=OUT.json]

Each line of FILE is {"seed": int, "num_frames": int, "prompts": {"0": "...", "64": "..."}}, optionally with
"sampling": {"chunk", "steps_per_chunk", "guidance", "reference_frames", "warmup_frames"} (any of them), as
`experiments.stream --live` records it: those settings are then used, so a replay reproduces the live stream exactly
(with the same --checkpoint). A sampling flag given on the command line wins over the record (a note on stderr
names each such difference: the replay then differs from the recorded stream); unset keys and unset flags take the
checkpoint's defaults. One run streams every schedule with one sampler, so all lines must hold the same sampling
block (or none). Without --schedules, 20 seeded random one-object schedules of 256 frames with a switch every 64
frames. A line may carry "targets": {"0": canonical caption, ...} beside free-text prompts: the model is given the
prompts and scored against the targets. --reword=heldout rewords every prompt of the schedules in words no training
caption used (streamdit_jax.shapes_wording) and scores against the canonical captions; --reword=heldout_phrasing
only the phrasing (templates, verbs, direction words; the training colour and shape words). Prints the evaluator's table and writes OUT.json with present, colour, shape, direction,
switch_lag_frames, drift_points, settled_drift_points, frames_per_second, sampling (the settings used) and the
per-window details. drift_points = last window - first window; settled_drift_points leaves out the frames each
obeyed switch took to show (its lag), which plain drift counts as decay whenever the first window holds no switch
and the last does.

Bad input exits with code 2 and a message naming the value, before the checkpoint is read: a malformed schedule
line (or sampling block, or a scored caption -- the targets, else the prompts -- not in the shapes-world grammar), --output_json whose
directory does not exist or is not writable, --window < 1, and the sampling flags by experiments.stream's rules.
"""
from __future__ import annotations

import sys

from absl import app, flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import (SAMPLING_FLAGS, build_streamer, check_sampling_flags, checked,
                                   define_stream_flags, quiet_library_logs)
from streamdit_jax.evaluation import format_table
from streamdit_jax.evaluation.driver import evaluate_streamer, write_result
from streamdit_jax.evaluation.schedule import default_schedules, reword_schedules
from streamdit_jax.sampling.schedule_io import read_schedules, sampling_choices
from streamdit_jax.sampling.schedules import check_int
from streamdit_jax.sampling.video_io import check_writable

define_stream_flags()
flags.DEFINE_string("schedules", "", "JSONL of {seed, num_frames, prompts[, targets][, sampling]}; '' = 20 random "
                    "schedules.")
flags.DEFINE_enum("reword", "", ["", "train", "heldout", "heldout_phrasing"],
                  "Reword every prompt in this split's words (shapes_wording) and score against the canonical "
                  "captions: 'heldout' = wording never trained on; 'heldout_phrasing' = its templates, verbs and "
                  "directions around the training colour and shape words.")
flags.DEFINE_string("output_json", "", "Where to write the results ('' = do not write).")
flags.DEFINE_integer("window", 64, "Frames per window for the drift metrics (>= 1).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    quiet_library_logs()
    check_sampling_flags()
    checked(check_int, FLAGS.window, "--window", 1, meaning="frames per window of the drift metrics")
    if FLAGS.output_json:
        checked(check_writable, FLAGS.output_json, "--output_json")
    schedules = checked(read_schedules, FLAGS.schedules, "--schedules") if FLAGS.schedules else default_schedules()
    if FLAGS.reword:
        schedules = reword_schedules(schedules, FLAGS.reword)
    given = {name: FLAGS[name].value for name in SAMPLING_FLAGS if FLAGS[name].present}  # an explicit flag wins
    choices, notes = checked(sampling_choices, schedules, given, prefix="--", name="--schedules")
    for note in notes:
        print(note, file=sys.stderr)
    _, streamer = build_streamer(FLAGS.checkpoint, text_encoder=FLAGS.text_encoder, **choices)
    result = evaluate_streamer(streamer, schedules, FLAGS.window, log=lambda line: print(line, flush=True))
    print(format_table(result))
    print(f"frames_per_second (after the first, compiling, stream): {result['frames_per_second']:.1f}")
    if FLAGS.output_json:
        write_result(FLAGS.output_json, result)
        print(f"wrote {FLAGS.output_json}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
