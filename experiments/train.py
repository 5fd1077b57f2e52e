r"""Train StreamDiT with buffered flow matching and mixed chunk sizes (Sec. 3-4).

  python -m experiments.train --config=experiments/configs/shapes_tiny.py --workdir=DIR [--config.total_steps=30]
  python -m experiments.train --config=... --workdir=DIR --init_from=CHECKPOINT   # fine-tune from EMA parameters

Builds the dataset into DIR/data if missing (shapes world) and resumes automatically from DIR. SIGTERM saves a
checkpoint and exits 0. Non-finite loss/gradients stop the run (exit 1) with the last good checkpoint kept.
Multi-host: pass --distributed (or set STREAMDIT_DISTRIBUTED=1) to call jax.distributed.initialize() (explicitly from
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID when set, else auto-detected: TPU, Slurm).

Every TrainConfig field is a --config.KEY (the config files start from experiments.config_dicts.config_dict()).
Bad input exits 2 with a one-line message before anything is built: an unknown --config.KEY or a value that does not
parse (config_dicts.parse_flags), an invalid value (the config dataclasses name it), an unwritable workdir, a dataset
that cannot be built (training.input.check_training_inputs: e.g. data.video_dir without captions.jsonl or clips).
"""
from __future__ import annotations

import dataclasses
import logging
import sys

from absl import app, flags
from ml_collections import config_flags

from experiments.flag_parsing import parse_flags
from streamdit_jax import parallel
from streamdit_jax.configs import TrainConfig
from streamdit_jax.profiling import parse_profile_steps
from streamdit_jax.training.input import check_training_inputs, train_data_iterator
from streamdit_jax.training.loop import ConfigMismatchError, NonFiniteError, train
from streamdit_jax.restore import CheckpointError

config_flags.DEFINE_config_file("config", None, "Training config file (get_config()).", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, samples, dataset.")
flags.DEFINE_string("init_from", None, "Fine-tune: a checkpoint (training workdir or export) whose EMA parameters "
                    "start this run (overrides config.init_from; ignored when WORKDIR already holds a checkpoint).")
flags.DEFINE_integer("stop_after", None, "Stop after this many steps of this run (a checkpoint is saved there; run "
                     "again to resume). The learning-rate schedule still follows config.total_steps.")
flags.DEFINE_float("time_limit_min", None, "Stop after this many minutes of this run, with a checkpoint (e.g. a "
                   "training budget); run again to resume.")
flags.DEFINE_bool("distributed", parallel.distributed_requested(),
                  f"Call jax.distributed.initialize() (multi-host; default: ${parallel.DISTRIBUTED_ENV}=1).")
flags.DEFINE_string("profile_steps", "", "START:STOP: write a jax.profiler trace of training steps START..STOP-1 "
                    "to WORKDIR/profile (TensorBoard's profile plugin, XProf, Perfetto; see README 'Profiling').")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.INFO)
    if FLAGS.distributed:
        parallel.initialize_distributed()
    try:
        cfg = TrainConfig.from_dict(FLAGS.config.to_dict())
        if FLAGS.init_from is not None:
            cfg = dataclasses.replace(cfg, init_from=FLAGS.init_from)
    except ValueError as e:
        fail(f"invalid config: {e}", 2)
    if cfg.distill is not None and not cfg.distill.teacher:
        fail("config.distill is set but distill.teacher is empty: distil with experiments.distill (--teacher=DIR "
             "fills it in and takes the model from the teacher's checkpoint)", 2)
    if FLAGS.stop_after is not None and FLAGS.stop_after < 1:
        fail(f"--stop_after={FLAGS.stop_after} must be >= 1 (or left unset: train to config.total_steps)", 2)
    if FLAGS.time_limit_min is not None and not FLAGS.time_limit_min > 0:
        fail(f"--time_limit_min={FLAGS.time_limit_min} must be > 0 (or left unset: no time limit)", 2)
    try:
        profile_steps = parse_profile_steps(FLAGS.profile_steps)
    except ValueError as e:
        fail(str(e), 2)
    try:
        check_training_inputs(cfg, FLAGS.workdir)
    except ValueError as e:
        fail(str(e), 2)
    try:
        train(cfg, FLAGS.workdir, train_data_iterator, stop_after=FLAGS.stop_after,
              time_limit_s=None if FLAGS.time_limit_min is None else 60.0 * FLAGS.time_limit_min,
              profile_steps=profile_steps)
    except (ConfigMismatchError, CheckpointError) as e:
        fail(str(e), 2)
    except NonFiniteError as e:
        logging.error("%s", e)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
