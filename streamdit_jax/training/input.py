"""Training input: build the dataset if missing, then tfds.data_source per process -> grain -> numpy batches.

The batches are this process's share of the global batch; the loop turns them into global jax.Arrays on the mesh
(jax.make_array_from_process_local_data). The grain iterator's state is checkpointed with the model.
"""
from __future__ import annotations

import os
import tempfile

import jax
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from streamdit_jax.data import pipeline, tfds_builders
from streamdit_jax.configs import TrainConfig
from streamdit_jax.models.conditioned import text_encoder_of


def dataset_dir(cfg: TrainConfig, workdir: str) -> str:
    """Where the dataset is built / read: data.data_dir, or WORKDIR/data."""
    return cfg.data.data_dir or os.path.join(workdir, "data")


def make_dataset_builder(cfg: TrainConfig, workdir: str):
    """The configured dataset's tfds builder (nothing is built). ValueError naming a bad data setting."""
    d = cfg.data
    if d.name == "shapes_world":
        kwargs = dict(num_train_clips=d.num_clips, num_validation_clips=d.num_val_clips, clip_len=d.clip_len,
                      world=d.world(), base_seed=d.seed)
    elif d.name == "video_folder":
        check_video_dir(d.video_dir)
        kwargs = dict(video_dir=d.video_dir, clip_len=d.clip_len, frame_size=d.frame_size)
    else:
        raise ValueError(f"data.name={d.name!r} is unknown; valid: {sorted(tfds_builders.BUILDERS)}")
    return tfds_builders.make_builder(d.name, dataset_dir(cfg, workdir), **kwargs)


def prepare_dataset(cfg: TrainConfig, workdir: str):
    """Builds the configured dataset once (process 0; the others wait) and returns (builder, data_dir)."""
    builder = make_dataset_builder(cfg, workdir)
    if jax.process_index() == 0:
        tfds_builders.build_if_missing(builder)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("streamdit_dataset_built")
    return builder, dataset_dir(cfg, workdir)


# ------------------------------------------------------------------------ checks before anything is built or trained

def _is_remote(path: str) -> bool:
    return "://" in path  # gs://, s3://, ...: left to the storage layer


def check_writable_dir(path: str, what: str) -> None:
    """ValueError naming ``what`` unless ``path`` is (or can be made) a directory this process can write in. Remote
    paths (gs://...) are not checked."""
    if _is_remote(path):
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{what} {path!r} cannot be created: {e.strerror or e}") from None
    if not os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_check_"):
            pass
    except OSError as e:
        raise ValueError(f"{what} {path!r} is not writable: {e.strerror or e}") from None


def check_video_dir(video_dir: str) -> None:
    """ValueError unless data.video_dir names an existing directory (data.name = video_folder)."""
    if not video_dir:
        raise ValueError("data.name='video_folder' needs data.video_dir: a folder of videos + captions.jsonl "
                         "(--config.data.video_dir=DIR)")
    if not os.path.isdir(video_dir):
        what = "does not exist" if not os.path.exists(video_dir) else "is not a directory"
        raise ValueError(f"data.video_dir={video_dir!r} {what}: it must be a folder of videos + captions.jsonl")


def check_dataset_source(cfg: TrainConfig, workdir: str) -> None:
    """ValueError naming the problem when the configured dataset cannot be built: data.video_dir empty, missing, without
    captions.jsonl, or without a single usable clip (video_folder; decoded up to the first clip found), or a data
    directory that cannot be written. Nothing is checked for a dataset already prepared (it is only read)."""
    builder = make_dataset_builder(cfg, workdir)
    if builder.is_prepared():
        return
    check_writable_dir(dataset_dir(cfg, workdir), "data.data_dir" if cfg.data.data_dir else "the dataset directory")
    if cfg.data.name == "video_folder":
        builder.check_source()


def check_training_inputs(cfg: TrainConfig, workdir: str) -> None:
    """What a training run needs before it builds or compiles anything: a writable workdir and a dataset that can be
    built (see check_dataset_source). ValueError naming the problem."""
    check_writable_dir(workdir, "workdir")
    check_dataset_source(cfg, workdir)


def train_data_iterator(cfg: TrainConfig, workdir: str):
    """This process's iterator of {"frames": uint8 [b, B, H, W, 3], "tokens": int32 [b, L]} (get/set_state)."""
    builder, data_dir = prepare_dataset(cfg, workdir)
    source = tfds.data_source(tfds_builders.data_source_name(builder), data_dir=data_dir,
                              split=tfds.split_for_jax_process("train"))
    ds = pipeline.make_train_dataset(source, window_len=cfg.buffer_len, batch_size=cfg.batch_size // jax.process_count(),
                                     seed=cfg.seed,
                                     tokenize=text_encoder_of(cfg.model).tokenize,
                                     reword=cfg.data.caption_rewording())
    return iter(ds)
