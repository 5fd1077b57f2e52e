"""Training input: build the dataset if missing, then tfds.data_source per process -> grain -> numpy batches.

The batches are this process's share of the global batch; the loop turns them into global jax.Arrays on the mesh
(jax.make_array_from_process_local_data). The grain iterator's state is checkpointed with the model.
"""
from __future__ import annotations

import os

import jax
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from streamdit_jax.data import pipeline, shapes, tfds_builders
from streamdit_jax.training.config import TrainConfig


def prepare_dataset(cfg: TrainConfig, workdir: str):
    """Builds the configured dataset once (process 0; the others wait) and returns (builder, data_dir)."""
    data_dir = cfg.data.data_dir or os.path.join(workdir, "data")
    d = cfg.data
    if d.name == "shapes_world":
        kwargs = dict(num_train_clips=d.num_clips, num_validation_clips=d.num_val_clips, clip_len=d.clip_len,
                      world=shapes.ShapesWorldConfig(frame_size=d.frame_size, two_object_prob=d.two_object_prob,
                                                     mean_switch_interval=d.mean_switch_interval,
                                                     switch_weights=d.switch_weights),
                      base_seed=d.seed)
    elif d.name == "video_folder":
        if not d.video_dir:
            raise ValueError("data.name='video_folder' needs data.video_dir (a folder of .mp4 + captions.jsonl)")
        kwargs = dict(video_dir=d.video_dir, clip_len=d.clip_len, frame_size=d.frame_size)
    else:
        raise ValueError(f"data.name={d.name!r} is unknown; valid: {sorted(tfds_builders.BUILDERS)}")
    builder = tfds_builders.make_builder(d.name, data_dir, **kwargs)
    if jax.process_index() == 0:
        tfds_builders.build_if_missing(builder)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("streamdit_dataset_built")
    return builder, data_dir


def train_data_iterator(cfg: TrainConfig, workdir: str):
    """This process's iterator of {"frames": uint8 [b, B, H, W, 3], "tokens": int32 [b, L]} (get/set_state)."""
    builder, data_dir = prepare_dataset(cfg, workdir)
    source = tfds.data_source(tfds_builders.data_source_name(builder), data_dir=data_dir,
                              split=tfds.split_for_jax_process("train"))
    ds = pipeline.make_train_dataset(source, window_len=cfg.buffer_len, batch_size=cfg.batch_size // jax.process_count(),
                                     seed=cfg.seed, max_text_len=cfg.model.text.max_len)
    return iter(ds)
