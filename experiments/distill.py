r"""Distill a trained StreamDiT teacher into a few-step student (Sec. 4.2; STREAMDIT.md section 7).

  python -m experiments.distill --config=experiments/configs/distill_shapes.py --workdir=DIR [--teacher=PATH] \
      [--config.total_steps=10]

The student's model, data and noise schedule come from the teacher's checkpoint (the student starts from the
teacher's EMA parameters); the config gives the scheme (config.distill: chunk, steps_per_chunk, reference_frames,
guidance) and the optimisation. Same mesh, loop, checkpoints, resume (automatic from DIR), metrics and progress as
experiments.train. Stream or evaluate the result with --checkpoint=DIR --steps_per_chunk=1 (no --guidance).
"""
from __future__ import annotations

import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import BYTE_BUNDLE, fail
from streamdit_jax import parallel
from streamdit_jax.profiling import parse_profile_steps
from streamdit_jax.training.distill_config import student_config
from streamdit_jax.training.input import check_training_inputs, train_data_iterator
from streamdit_jax.training.loop import ConfigMismatchError, NonFiniteError, train
from streamdit_jax.restore import CheckpointError

config_flags.DEFINE_config_file("config", None, "Distillation config file (get_config()).", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory of the student: checkpoints, metrics, samples, dataset.")
flags.DEFINE_string("teacher", BYTE_BUNDLE, "The teacher's training workdir (default: the bundled byte-encoder "
                    "model, experiments/checkpoints/shapes_latent).")
flags.DEFINE_bool("distributed", parallel.distributed_requested(),
                  f"Call jax.distributed.initialize() (multi-host; default: ${parallel.DISTRIBUTED_ENV}=1).")
flags.DEFINE_string("profile_steps", "", "START:STOP: write a jax.profiler trace of distillation steps "
                    "START..STOP-1 to WORKDIR/profile (TensorBoard's profile plugin, XProf, Perfetto; see README "
                    "'Profiling').")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.INFO)
    if FLAGS.distributed:
        parallel.initialize_distributed()
    try:
        profile_steps = parse_profile_steps(FLAGS.profile_steps)
    except ValueError as e:
        fail(str(e))
    if not os.path.isdir(os.path.join(FLAGS.teacher, "checkpoints")):
        fail(f"--teacher={FLAGS.teacher!r} is not a training workdir with checkpoints/")
    try:
        cfg = student_config(FLAGS.teacher, FLAGS.config.to_dict())
    except (CheckpointError, ValueError, TypeError) as e:
        fail(f"invalid distillation config: {e}")
    logging.info("distilling %s: scheme %s, guidance %.2f -> one unguided step per macro step", FLAGS.teacher,
                 cfg.distill_partition(), cfg.distill.guidance)
    try:
        check_training_inputs(cfg, FLAGS.workdir)
    except ValueError as e:
        fail(str(e))
    try:
        train(cfg, FLAGS.workdir, train_data_iterator, profile_steps=profile_steps)
    except (ConfigMismatchError, CheckpointError) as e:
        fail(str(e))
    except NonFiniteError as e:
        logging.error("%s", e)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
