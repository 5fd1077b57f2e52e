r"""Encode every caption of the training data once with the config's frozen text encoder, for
``data.text_source="precomputed"`` (training then never runs the encoder nor holds its weights).

  python -m experiments.precompute_text --config=experiments/configs/shapes_minilm.py --workdir=DIR \
      --config.data.caption_wording=canonical
  python -m experiments.train --config=experiments/configs/shapes_minilm.py --workdir=DIR \
      --config.data.caption_wording=canonical --config.data.text_source=precomputed

Takes the same --config / --workdir / --config.KEY=VALUE as experiments.train: prepares the dataset exactly as training
does (DIR/data unless data.data_dir), then writes the embeddings of its captions beside it
(``streamdit_jax.data.caption_embeddings``; named by the dataset and the encoder, so another encoder never reads them).
Idempotent: a complete set is left as it is; a killed run leaves nothing that reads as complete. One process.

Bad input exits 2 with a one-line message: a trainable encoder (model.text.kind="byte"), data.caption_wording=
"varied" (reworded at random per window: cannot be precomputed), an invalid config or an unwritable workdir.
"""
from __future__ import annotations

import functools
import logging

from absl import app, flags
from ml_collections import config_flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import checked, fail
from streamdit_jax.training.precompute import precompute_for_training
from streamdit_jax.training.input import precompute_caption_embeddings

config_flags.DEFINE_config_file("config", None, "Training config file (get_config()).", lock_config=True)
flags.DEFINE_string("workdir", None, "The training run's directory (its dataset is DIR/data unless data.data_dir).")
flags.DEFINE_integer("batch_size", 64, "Captions per jitted encoder call.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.INFO)
    if FLAGS.batch_size < 1:
        fail(f"--batch_size={FLAGS.batch_size} must be >= 1 (captions per encoder call)", 2)
    write = functools.partial(precompute_caption_embeddings, caption_batch=FLAGS.batch_size)
    print(checked(precompute_for_training, FLAGS.config.to_dict(), FLAGS.workdir, write, "text_source"))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
