"""What the commands that precompute a derived dataset for training share (``experiments.precompute_latents``,
``experiments.precompute_text``): the training config and workdir are checked as a training run checks them, then the
derived dataset is written beside the frames dataset and the command reports where.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import tensorflow_datasets as tfds

from streamdit_jax.configs import TrainConfig
from streamdit_jax.training.input import check_dataset_source, check_writable_dir

# (config, workdir) -> (the derived dataset's builder, whether it was written now)
Write = Callable[[TrainConfig, str], tuple[tfds.core.DatasetBuilder, bool]]


def precompute_for_training(config: Mapping[str, Any], workdir: str, write: Write, source: str) -> str:
    """Runs ``write`` on the TrainConfig of ``config`` (a dict, as ``--config`` gives it) and ``workdir`` once the
    workdir is writable and the config's dataset can be built (``check_dataset_source``); returns the line that
    reports it, naming the override that trains on it (``--config.data.<source>=precomputed``). ValueError with a
    one-line message on bad input ("invalid config: ..." for the config)."""
    try:
        cfg = TrainConfig.from_dict(config)
    except ValueError as e:
        raise ValueError(f"invalid config: {e}") from None
    check_writable_dir(workdir, "workdir")
    check_dataset_source(cfg, workdir)
    builder, written = write(cfg, workdir)
    verb = "wrote" if written else "already complete:"
    return f"{verb} {builder.data_dir} (train with --config.data.{source}=precomputed)"
