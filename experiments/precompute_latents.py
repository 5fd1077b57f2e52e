r"""Encode every clip of the training data once with the config's autoencoder, for ``data.latent_source=
"precomputed"`` (training then reads latents and never runs the autoencoder nor holds its weights).

  python -m experiments.precompute_latents --config=CONFIG --workdir=DIR
  python -m experiments.train --config=CONFIG --workdir=DIR --config.data.latent_source=precomputed

Takes the same --config / --workdir / --config.KEY=VALUE as experiments.train: prepares the dataset exactly as training
does (DIR/data unless data.data_dir), then writes the latents of its clips beside it (``streamdit_jax.data.
latent_clips``; named by the dataset and the autoencoder's files, so another autoencoder never reads them). A large
folder is split with --num_parts=N: run --part=0 first (it builds the frames dataset), then parts 1..N-1 in parallel,
one process or host each. Idempotent: a complete part is left as it is; a killed run leaves nothing that reads as
complete.

Bad input exits 2 with a one-line message: an invalid config or part, a config without an autoencoder, a clip length a
causal autoencoder cannot encode, an unwritable workdir.
"""
from __future__ import annotations

import functools
import logging

from absl import app, flags
from ml_collections import config_flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import checked, fail
from streamdit_jax.training.precompute import precompute_for_training
from streamdit_jax.training.latent_input import precompute_latents

config_flags.DEFINE_config_file("config", None, "Training config file (get_config()).", lock_config=True)
flags.DEFINE_string("workdir", None, "The training run's directory (its dataset is DIR/data unless data.data_dir).")
flags.DEFINE_integer("num_parts", 1, "Parts to split the clips into (each a dataset of its own, built in parallel).")
flags.DEFINE_integer("part", 0, "Which part this process writes (0 .. num_parts-1).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.INFO)
    if not 0 <= FLAGS.part < FLAGS.num_parts:
        fail(f"--part={FLAGS.part} of --num_parts={FLAGS.num_parts}: need 0 <= part < num_parts", 2)
    write = functools.partial(precompute_latents, part=FLAGS.part, num_parts=FLAGS.num_parts)
    print(checked(precompute_for_training, FLAGS.config.to_dict(), FLAGS.workdir, write, "latent_source"))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
