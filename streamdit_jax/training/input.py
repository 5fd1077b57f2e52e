"""Training input: build the dataset if missing, then tfds.data_source per process -> grain -> numpy batches.

The batches are this process's share of the global batch; the loop turns them into global jax.Arrays on the mesh
(jax.make_array_from_process_local_data). The grain iterator's state is checkpointed with the model.

With ``data.text_source="precomputed"`` the captions' embeddings by the config's frozen text encoder are read beside
the frames (``data.caption_embeddings``); ``precompute_caption_embeddings`` writes them (experiments.precompute_text).
With ``data.latent_source="precomputed"`` the clips' latents are read instead of their frames (``latent_input``).
"""
from __future__ import annotations

import dataclasses
import os
import tempfile

import jax
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from streamdit_jax.data import caption_embeddings, pipeline, tfds_builders
from streamdit_jax.data.latent_clips import PartsSource
from streamdit_jax.configs import TrainConfig
from streamdit_jax.models import t5
from streamdit_jax.models.config import TextEncoderConfig
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
        kwargs = dict(video_dir=d.video_dir, clip_len=d.clip_len, frame_size=d.frame_hw)
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


# ------------------------------------------------------------------------------------- precomputed caption embeddings

PRECOMPUTE_COMMAND = "python -m experiments.precompute_text"


def text_encoder_directory(text: TextEncoderConfig) -> str:
    """The directory of a frozen text encoder's files (fingerprinted to name its embeddings): model.text.path, or the
    installed default of its kind."""
    if text.path:
        return text.path
    if text.kind == "minilm":
        from streamdit_jax.models.bert import default_minilm_directory
        return default_minilm_directory()
    raise ValueError(f"model.text.kind={text.kind!r} needs model.text.path (the directory of its weights) to name its "
                     f"precomputed caption embeddings")


def text_encoder_identity(model) -> str:
    """``caption_embeddings.encoder_identity`` of a model's frozen text encoder: its kind, sizes, dtypes and files
    (a T5's tokenizer files too where they lie apart, in a Diffusers pipeline's tokenizer/)."""
    text = model.text
    directory = text_encoder_directory(text)
    tokenizer = t5.tokenizer_directory(directory) if text.kind == "t5" else ""
    return caption_embeddings.encoder_identity(text.kind, text.max_len, text.width, (model.dtype, model.param_dtype),
                                               directory, tokenizer)


def caption_embeddings_builder(cfg: TrainConfig, workdir: str, frames_builder=None,
                               **build_kwargs) -> caption_embeddings.CaptionEmbeddings:
    """The builder of the caption embeddings of the configured dataset by the config's frozen text encoder (nothing
    is built or loaded: the encoder is named by its config and files). ``build_kwargs``: ``encode`` and the other
    arguments CaptionEmbeddings needs to build."""
    text = cfg.model.text
    frames_builder = frames_builder or make_dataset_builder(cfg, workdir)
    config = caption_embeddings.embeddings_config(tfds_builders.data_source_name(frames_builder),
                                                  text_encoder_identity(cfg.model), text.max_len, text.width)
    return caption_embeddings.CaptionEmbeddings(config=config, data_dir=dataset_dir(cfg, workdir),
                                                frames_builder=frames_builder, **build_kwargs)


def check_caption_embeddings(cfg: TrainConfig, workdir: str) -> None:
    """With data.text_source="precomputed": ValueError naming the command that writes them unless the caption
    embeddings of this config's dataset and text encoder are complete."""
    if cfg.data.text_source != "precomputed":
        return
    builder = caption_embeddings_builder(cfg, workdir)
    if builder.is_prepared():
        return
    others = caption_embeddings.others_in(dataset_dir(cfg, workdir), builder.builder_config.frames)
    raise ValueError(
        f"data.text_source='precomputed' needs the caption embeddings of model.text.kind={cfg.model.text.kind!r} "
        f"(max_len {cfg.model.text.max_len}), which are not complete in {os.path.dirname(builder.data_dir)}: write "
        f"them first with `{PRECOMPUTE_COMMAND} --config=CONFIG --workdir={workdir}` (this run's --config and "
        f"--config.* overrides)" + (f"; that directory holds embeddings of other encoders only: {others}" if others
                                    else ""))


def precompute_caption_embeddings(cfg: TrainConfig, workdir: str, caption_batch: int = 64,
                                  show_progress: bool = True) -> tuple[caption_embeddings.CaptionEmbeddings, bool]:
    """Prepares the dataset as training does and writes its captions' embeddings by the config's frozen text encoder
    (each distinct caption of ``caption_batch`` at a time encoded once, jitted) unless already complete. Returns
    (builder, whether they were written now). One process: ValueError when there are several, or when the config
    cannot train on precomputed text (a trainable encoder, reworded captions; the config's checks name why)."""
    if jax.process_count() > 1:
        raise ValueError(f"{PRECOMPUTE_COMMAND} runs in one process (this is one of {jax.process_count()}): run it "
                         f"once, without --distributed, before the multi-process training")
    if cfg.data.text_source != "precomputed":  # the checks of a config that trains on them
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, text_source="precomputed"))
    frames_builder, _ = prepare_dataset(cfg, workdir)
    builder = caption_embeddings_builder(cfg, workdir, frames_builder)
    if builder.is_prepared():
        return builder, False
    encode = caption_embeddings.batched_encoder(text_encoder_of(cfg.model), caption_batch)
    builder = caption_embeddings_builder(cfg, workdir, frames_builder, encode=encode, caption_batch=caption_batch,
                                         show_progress=show_progress)
    return builder, caption_embeddings.build(builder)


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
    """What a training run needs before it builds or compiles anything: a writable workdir, a dataset that can be
    built (see check_dataset_source) and, with precomputed text, its caption embeddings (check_caption_embeddings).
    ValueError naming the problem."""
    check_writable_dir(workdir, "workdir")
    check_dataset_source(cfg, workdir)
    check_caption_embeddings(cfg, workdir)
    if cfg.data.latent_source == "precomputed":
        from streamdit_jax.training.latent_input import check_latent_clips
        check_latent_clips(cfg, workdir)


def train_data_iterator(cfg: TrainConfig, workdir: str):
    """This process's iterator of {"frames": uint8 [b, B, H, W, 3], "tokens": int32 [b, L]} (get/set_state); with
    precomputed text "text" / "text_mask" (+ "null_text" / "null_text_mask" when cfg.text_dropout > 0) instead of
    "tokens", with precomputed latents "latents" float16 [b, B, h, w, C] instead of "frames" (see
    pipeline.make_train_dataset)."""
    if cfg.data.latent_source == "precomputed":  # every process reads its contiguous slice of the latents' records
        from streamdit_jax.training.latent_input import latent_training_source
        builder, data_dir = make_dataset_builder(cfg, workdir), dataset_dir(cfg, workdir)
        source = latent_training_source(cfg, workdir, builder)
        split = "train"
        records = source.records
    else:
        builder, data_dir = prepare_dataset(cfg, workdir)
        split = tfds.split_for_jax_process("train")
        source = tfds.data_source(tfds_builders.data_source_name(builder), data_dir=data_dir, split=split)
        records = None
    if cfg.data.text_source == "precomputed":
        check_caption_embeddings(cfg, workdir)
        embeddings = caption_embeddings_builder(cfg, workdir, builder)
        text_source = embeddings.as_data_source(split)
        text = dict(caption_embeddings=text_source if records is None else PartsSource([text_source], records),
                    null_text=caption_embeddings.null_text(embeddings) if cfg.text_dropout > 0 else None)
    else:
        text = dict(tokenize=text_encoder_of(cfg.model).tokenize, reword=cfg.data.caption_rewording())
    ds = pipeline.make_train_dataset(source, window_len=cfg.buffer_len, batch_size=cfg.batch_size // jax.process_count(),
                                     seed=cfg.seed, **text)
    return iter(ds)
