"""Precomputed latents for training (``data.latent_source="precomputed"``): the ``data.latent_clips`` dataset of the
configured frames dataset by the config's autoencoder, written once (in parts, one per process or host, for large
folders) by ``experiments.precompute_latents`` and read by the training input instead of frames."""
from __future__ import annotations

import dataclasses
import os
import re

import jax
import tensorflow_datasets as tfds

from streamdit_jax.configs import TrainConfig
from streamdit_jax.data import latent_clips, tfds_builders
from streamdit_jax.data.caption_embeddings import build
from streamdit_jax.training.input import dataset_dir, make_dataset_builder, prepare_dataset

PRECOMPUTE_COMMAND = "python -m experiments.precompute_latents"


def autoencoder_identity(cfg: TrainConfig) -> str:
    """The config's autoencoder as named in its latents' dataset: the patch factor, or a fingerprint of the
    directory of a learned one (Wan's VAE folder, or experiments.train_autoencoder's)."""
    if cfg.autoencoder_factor:
        return latent_clips.autoencoder_identity(f"patch{cfg.autoencoder_factor}")
    return latent_clips.autoencoder_identity("dir", cfg.autoencoder)


def _prefix(cfg: TrainConfig, frames_builder) -> str:
    return latent_clips.latent_clips_config(tfds_builders.data_source_name(frames_builder),
                                            autoencoder_identity(cfg), (0, 0, 0, 0)).name


def prepared_parts(cfg: TrainConfig, workdir: str, frames_builder=None) -> list[str]:
    """The directories of the prepared latents of this config's dataset and autoencoder, in part order: one (a
    single part) or N (``__part{i}of{N}``, all of them). ValueError naming the command that writes them when they
    are missing or incomplete."""
    frames_builder = frames_builder or make_dataset_builder(cfg, workdir)
    prefix, root = _prefix(cfg, frames_builder), os.path.join(dataset_dir(cfg, workdir), "latent_clips")
    ready = {n for n in (os.listdir(root) if os.path.isdir(root) else [])
             if os.path.isfile(os.path.join(root, n, latent_clips.VERSION, "dataset_info.json"))}
    if prefix in ready:
        return [os.path.join(root, prefix, latent_clips.VERSION)]
    parts = {}
    for name in ready:
        m = re.fullmatch(re.escape(prefix) + r"__part(\d+)of(\d+)", name)
        if m:
            parts.setdefault(int(m.group(2)), set()).add(int(m.group(1)))
    complete = [n for n, have in parts.items() if have == set(range(n))]
    if complete:
        n = max(complete)
        return [os.path.join(root, f"{prefix}__part{i}of{n}", latent_clips.VERSION) for i in range(n)]
    found = "; found only parts " + ", ".join(f"{sorted(have)} of {n}" for n, have in sorted(parts.items())) \
        if parts else ""
    raise ValueError(f"data.latent_source='precomputed' needs the latents of this dataset by this autoencoder, which "
                     f"are not complete in {root}{found}: write them first with `{PRECOMPUTE_COMMAND} --config=CONFIG "
                     f"--workdir={workdir}` (this run's --config and --config.* overrides; --num_parts=N --part=I "
                     f"to split the work)")


def check_latent_clips(cfg: TrainConfig, workdir: str) -> None:
    """With data.latent_source="precomputed": ValueError (``prepared_parts``) unless its latents are complete."""
    if cfg.data.latent_source == "precomputed":
        prepared_parts(cfg, workdir)


def latent_training_source(cfg: TrainConfig, workdir: str, frames_builder=None) -> latent_clips.PartsSource:
    """This process's records of the prepared latents (all parts as one sequence, this process's contiguous
    slice)."""
    parts = [tfds.builder_from_directory(d) for d in prepared_parts(cfg, workdir, frames_builder)]
    return latent_clips.as_training_source(parts, jax.process_index(), jax.process_count())


def precompute_latents(cfg: TrainConfig, workdir: str, part: int = 0, num_parts: int = 1,
                       show_progress: bool = True) -> tuple[latent_clips.LatentClips, bool]:
    """Prepares the dataset as training does and writes part ``part`` of ``num_parts`` of its clips' latents by the
    config's autoencoder (jitted, one clip at a time) unless already complete. Returns (builder, whether it was
    written now). Every part may run in its own process or on its own host (the frames dataset must be prepared
    before, or by part 0 alone: builds of one dataset must not race)."""
    if cfg.data.latent_source != "precomputed":  # the checks of a config that trains on them
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, latent_source="precomputed"))
    latent_clips.part_range(0, part, num_parts)
    frames_builder = make_dataset_builder(cfg, workdir)
    if not frames_builder.is_prepared():
        if part != 0:
            raise ValueError(f"the frames dataset is not prepared in {dataset_dir(cfg, workdir)}: run part 0 first "
                             f"(it builds it), or `{PRECOMPUTE_COMMAND}` once without --part")
        frames_builder, _ = prepare_dataset(cfg, workdir)
    autoencoder = cfg.make_autoencoder()
    clip = frames_builder.info.features["frames"].shape
    shape = jax.eval_shape(lambda p: autoencoder.encode(p, jax.numpy.zeros((1,) + tuple(clip))), autoencoder.params)
    config = latent_clips.latent_clips_config(tfds_builders.data_source_name(frames_builder),
                                              autoencoder_identity(cfg), shape.shape[1:], part, num_parts)
    builder = latent_clips.LatentClips(config=config, data_dir=dataset_dir(cfg, workdir),
                                       frames_builder=frames_builder, encode_clip=latent_clips.clip_encoder(autoencoder),
                                       temporal_factor=autoencoder.temporal_factor, show_progress=show_progress)
    return builder, build(builder)
