"""Caption embeddings of a frozen text encoder, computed once and stored beside the frames dataset they belong to.

A frozen encoder (e.g. umT5-XXL) never runs in the training step: ``CaptionEmbeddings`` is a TFDS dataset (array_record,
read with ``as_data_source``; Tensor/Text/scalar features only, so no TensorFlow) with, for every split of the frames
dataset, one record per clip in the SAME order (index i of both is the same clip; ``pipeline.JoinCaptionEmbeddings``
checks the ids):

    id                 int64: the clip's id (as in the frames dataset)
    distinct_captions  Text: the clip's distinct captions joined with "\\n", in order of first appearance
    text               float16 [n, L, D]: the encoder's embeddings of the n distinct captions
    text_mask          int32 [n, L]: the encoder's mask of them (1 on tokens)
    caption_index      int32 [clip_len]: per frame, which of the n captions it has

plus the split ``null_prompt``: one record (id -1) holding the embedding of the null prompt "" (caption dropout).

The config name identifies both sides: the frames dataset (``<frames name>__<frames config>``) and the encoder
(``encoder_identity``: kind, max_len, width, dtypes and a fingerprint of its files), so embeddings of another encoder or
another dataset are never read. Directory: ``DATA_DIR/caption_embeddings/<frames>__<frames config>__<kind>_L<max_len>_
<8 hex>/1.0.0/``. TFDS writes into an ``incomplete.*`` directory and renames it when every split is written, so a killed
build leaves nothing that reads as prepared (``build`` removes such leftovers).
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import logging
import os
import shutil
from typing import Callable, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
from tqdm import tqdm

from streamdit_jax.data import derived
from streamdit_jax.data.tfds_builders import split_captions

VERSION = derived.VERSION  # the version directory of the prepared embeddings (``others_in`` looks for it)
NULL_SPLIT = "null_prompt"
NULL_ID = -1
# Stored as float16: the embeddings are the dataset's bulk (L x D per distinct caption: 4 MiB each at umT5-XXL's
# 512 x 4096 in float16) and are read again for every window, so halving them halves the disk and the read bandwidth.
# float16 keeps 11 significant bits (bfloat16 only 8), which for an encoder's normalised last hidden state (|x| of a
# few units) is a relative error of ~5e-4, below what the DiT's cross-attention resolves; values past float16's range
# are refused at build time (``batched_encoder``).
EMBEDDING_DTYPE = np.float16
# Files larger than this are fingerprinted by their size and first / last SAMPLE_BYTES (a multi-GB checkpoint would
# otherwise be read whole at every training start); smaller ones (configs, tokenizers, MiniLM's 90 MB) in full.
FULL_HASH_BYTES = 256 * 2 ** 20
SAMPLE_BYTES = 16 * 2 ** 20

Encode = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]  # captions -> (float16 [n, L, D], int32 [n, L])

_log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------- encoder identity

def directory_fingerprint(directory: str, full_hash_bytes: int = FULL_HASH_BYTES,
                          sample_bytes: int = SAMPLE_BYTES) -> str:
    """sha256 (hex) of the files directly in ``directory`` (an encoder's config, tokenizer and weights): names,
    sizes and contents; a file over ``full_hash_bytes`` contributes its first and last ``sample_bytes``. Dotfiles and
    *.md (documentation) are left out. ValueError when ``directory`` is not a directory."""
    if not os.path.isdir(directory):
        raise ValueError(f"the text encoder directory {directory!r} does not exist or is not a directory")
    digest = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(".") or name.lower().endswith(".md") or not os.path.isfile(path):
            continue
        size = os.path.getsize(path)
        digest.update(f"{name}\0{size}\0".encode())
        with open(path, "rb") as f:
            if size <= full_hash_bytes:
                for block in iter(lambda: f.read(2 ** 20), b""):
                    digest.update(block)
            else:
                digest.update(f.read(sample_bytes))
                f.seek(max(0, size - sample_bytes))
                digest.update(f.read(sample_bytes))
    return digest.hexdigest()


def encoder_identity(kind: str, max_len: int, width: int, dtypes: Sequence[str], directory: str,
                     tokenizer_directory: str = "") -> str:
    """``<kind>_L<max_len>_<8 hex>``: the hex digits cover width, the compute / parameter dtypes and the files of
    ``directory`` (``directory_fingerprint``) and of ``tokenizer_directory`` when the tokenizer lies elsewhere (a
    Diffusers pipeline's tokenizer/), so another checkpoint, tokenizer or precision gives another name."""
    key = (kind, max_len, width, tuple(dtypes), directory_fingerprint(directory))
    if tokenizer_directory and os.path.normpath(tokenizer_directory) != os.path.normpath(directory):
        key += (directory_fingerprint(tokenizer_directory),)
    digest = hashlib.sha256(repr(key).encode())
    return f"{kind}_L{max_len}_{digest.hexdigest()[:8]}"


# ---------------------------------------------------------------------------------------------------- the dataset

@dataclasses.dataclass(eq=False)
class CaptionEmbeddingsConfig(tfds.core.BuilderConfig):
    """``frames``: the frames dataset's tfds name ("shapes_world/f16_t24_...", in the same data_dir); ``encoder``:
    ``encoder_identity``; ``max_len`` / ``width``: the embeddings' [L, D]."""

    frames: str = ""
    encoder: str = ""
    max_len: int = 0
    width: int = 0


def embeddings_config(frames: str, encoder: str, max_len: int, width: int) -> CaptionEmbeddingsConfig:
    """The config of ``frames``' embeddings by ``encoder``; its name joins both (see the module docstring)."""
    if "/" not in frames:
        raise ValueError(f"frames={frames!r} must be a tfds name with its config: 'dataset/config'")
    name = f"{frames.replace('/', '__')}__{encoder}"
    return CaptionEmbeddingsConfig(name=name, frames=frames, encoder=encoder, max_len=max_len, width=width,
                                   description=f"caption embeddings of {frames} by the text encoder {encoder}")


class CaptionEmbeddings(derived.DerivedDataset, config_function="embeddings_config", encoder="an encoder"):
    """Per-clip caption embeddings of a frames dataset (see the module docstring). Reading needs only the config;
    building also ``frames_builder`` (prepared, in the same data_dir) and ``encode`` (``batched_encoder``)."""

    def __init__(self, *, encode: Optional[Encode] = None, caption_batch: int = 64, **kwargs):
        super().__init__(encoder=encode, **kwargs)
        self._caption_batch = caption_batch

    def _features(self, config: CaptionEmbeddingsConfig) -> dict:
        return {
            "distinct_captions": tfds.features.Text(),
            "text": tfds.features.Tensor(shape=(None, config.max_len, config.width), dtype=EMBEDDING_DTYPE),
            "text_mask": tfds.features.Tensor(shape=(None, config.max_len), dtype=np.int32),
            "caption_index": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        }

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        self._check_build_inputs()
        splits = {split: self._generate_examples(split) for split in self._frames_builder.info.splits}
        if NULL_SPLIT in splits:
            raise ValueError(f"the frames dataset has a split named {NULL_SPLIT!r}, the name of the null prompt's")
        return {**splits, NULL_SPLIT: self._null_examples()}

    def _null_examples(self):
        text, mask = self._encoder([""])
        yield 0, {"id": NULL_ID, "distinct_captions": "", "text": text, "text_mask": mask,
                  "caption_index": np.zeros((1,), np.int32)}

    def _generate_examples(self, split: str):
        # only the captions and ids are read: the other features (frames, attributes) are not decoded
        features = self._frames_builder.info.features
        skip = {k: tfds.decode.SkipDecoding() for k in features.keys() if k not in ("captions", "id")}
        frames = self._frames_builder.as_data_source(split, decoders=skip)
        bar = tqdm(total=len(frames), desc=f"{split} captions", unit="clip", disable=not self._show_progress,
                   dynamic_ncols=True)
        with bar:
            for index, record in enumerate(encoded_records(frames, self._encoder, self._caption_batch)):
                yield index, record
                bar.update(1)


def encoded_records(frames: Sequence[dict], encode: Encode, caption_batch: int) -> Iterator[dict]:
    """The CaptionEmbeddings records of ``frames`` (records with "id" and "captions"), in order. Records are gathered
    until they hold ``caption_batch`` distinct captions, which are encoded together (each once)."""
    pending: list[tuple[int, list[str]]] = []
    captions: dict[str, int] = {}

    def flush():
        text, mask = encode(list(captions))
        for clip_id, clip_captions in pending:
            distinct = list(dict.fromkeys(clip_captions))
            rows = [captions[c] for c in distinct]
            local = {c: i for i, c in enumerate(distinct)}
            yield {"id": clip_id, "distinct_captions": "\n".join(distinct), "text": text[rows],
                   "text_mask": mask[rows], "caption_index": np.asarray([local[c] for c in clip_captions], np.int32)}
        pending.clear()
        captions.clear()

    for i in range(len(frames)):
        record = frames[i]
        clip_captions = split_captions(record["captions"])
        for c in clip_captions:
            captions.setdefault(c, len(captions))
        pending.append((int(record["id"]), clip_captions))
        if len(captions) >= caption_batch:
            yield from flush()
    if pending:
        yield from flush()


def batched_encoder(encoder, batch_size: int) -> Encode:
    """``encode(captions)`` -> (float16 [n, L, D], int32 [n, L]) by a frozen ``models.text.TextEncoder`` with its own
    ``params``, jitted on batches of ``batch_size`` captions (the last one padded: one compiled program). ValueError
    when an embedding is not finite in float16 (beyond its range), naming the caption."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1 (captions per encoder call)")

    @jax.jit
    def run(params, tokens):
        text, mask = encoder.encode(params, tokens)
        text = text.astype(EMBEDDING_DTYPE)
        return text, mask.astype(jnp.int32), jnp.all(jnp.isfinite(text), axis=(1, 2))

    def encode(captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        tokens = encoder.tokenize(list(captions))
        n = len(tokens)
        tokens = np.concatenate([tokens, np.repeat(tokens[:1], -n % batch_size, axis=0)])
        parts = [jax.device_get(run(encoder.params, tokens[i:i + batch_size]))
                 for i in range(0, len(tokens), batch_size)]
        text, mask, finite = (np.concatenate([p[k] for p in parts])[:n] for k in range(3))
        if not finite.all():
            bad = captions[int(np.argmin(finite))]
            raise ValueError(f"the {encoder.name} embedding of the caption {bad!r} is not finite in float16 (beyond "
                             f"its range of 65504): these embeddings cannot be stored as float16")
        return text, mask

    return encode


def remove_incomplete(builder: CaptionEmbeddings) -> None:
    """Removes what killed builds of ``builder`` left (tfds's ``incomplete.*`` directories beside its version)."""
    parent = os.path.dirname(os.fspath(builder.data_dir))
    for path in glob.glob(os.path.join(parent, "incomplete.*")):
        _log.info("removing the leftovers of an interrupted build: %s", path)
        shutil.rmtree(path, ignore_errors=True)


def build(builder: CaptionEmbeddings) -> bool:
    """Writes the embeddings unless already prepared (then nothing is done); True when they were written now.
    One process at a time per data_dir (leftovers of killed builds are removed first)."""
    if builder.is_prepared():
        return False
    remove_incomplete(builder)
    config = tfds.download.DownloadConfig(try_download_gcs=False, compute_stats=tfds.download.ComputeStatsMode.SKIP)
    builder.download_and_prepare(download_config=config, file_format="array_record")
    return True


def null_text(builder: CaptionEmbeddings) -> dict[str, np.ndarray]:
    """{"null_text": float16 [1, L, D], "null_text_mask": int32 [1, L]}: the null prompt's embedding (caption
    dropout) from a prepared builder."""
    record = builder.as_data_source(NULL_SPLIT)[0]
    return {"null_text": np.asarray(record["text"]), "null_text_mask": np.asarray(record["text_mask"])}


def others_in(data_dir: str, frames: str) -> list[str]:
    """The encoder identities of the prepared embeddings of ``frames`` in ``data_dir`` (for error messages)."""
    prefix = frames.replace("/", "__") + "__"
    root = os.path.join(os.fspath(data_dir), "caption_embeddings")
    names = os.listdir(root) if os.path.isdir(root) else []
    return sorted(n[len(prefix):] for n in names if n.startswith(prefix)
                  and os.path.isfile(os.path.join(root, n, VERSION, "dataset_info.json")))
