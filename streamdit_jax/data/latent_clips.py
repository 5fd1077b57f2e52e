"""Latents of a video autoencoder, computed once per clip and stored beside the frames dataset they belong to.

A causal video autoencoder (Wan2.1's VAE: 4x temporal, 8x spatial) must see a clip whole: its first latent frame
encodes one video frame, every later one the next 4, each with the context of all before. Windows cut out of
video frames and encoded in the train step would restart that context at every window, so a model would never see
the latents a stream continues with. ``LatentClips`` holds, for every clip of the frames dataset's "train" split in
the SAME order (record i of both is one clip), the latents of the whole clip; training cuts its windows out of
them (``data.latent_source="precomputed"``) and never runs the autoencoder nor holds its weights:

    id           int64: the clip's id (as in the frames dataset)
    latents      float16 [t, h, w, C]: ``autoencoder.encode`` of the clip (a causal one: t = 1 + (T - 1) / f)
    captions     Text: the caption of each LATENT frame, "\\n"-joined: that of the last video frame it encodes
    frame_index  int32 [t]: that video frame's index in the clip (precomputed caption embeddings are looked up by it)

Large folders are encoded in parts (``num_parts``, one process or host each, in parallel): part i holds the frames
records [i n / N, (i + 1) n / N) and is a dataset of its own; ``PartsSource`` reads the parts as one sequence. The
config name identifies the frames dataset, the autoencoder (``autoencoder_identity``: kind and a fingerprint of its
files) and the part, so latents of another autoencoder or dataset are never read. TFDS writes into an
``incomplete.*`` directory and renames it when done, so a killed build leaves nothing that reads as prepared.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
from tqdm import tqdm

from streamdit_jax.data import derived
from streamdit_jax.data.caption_embeddings import directory_fingerprint
from streamdit_jax.data.tfds_builders import split_captions
from streamdit_jax.pixels import frames_to_float

VERSION = derived.VERSION  # the version directory of the prepared parts (read by ``training.latent_input``)
# float16: a normalised latent (Wan's are scaled to unit variance) keeps ~3 decimal digits, far below the noise the
# flow adds at any training level; it halves the disk and the read bandwidth of every window against float32.
LATENT_DTYPE = np.float16

EncodeClip = Callable[[np.ndarray], np.ndarray]  # uint8 [T, H, W, 3] -> float16 [t, h, w, C]

_log = logging.getLogger(__name__)


def autoencoder_identity(kind: str, directory: str = "") -> str:
    """``<kind>_<8 hex>``: the hex digits cover the autoencoder's files (``directory_fingerprint``; none for a
    parameter-free one), so latents of other weights get another name."""
    files = directory_fingerprint(directory) if directory else ""
    return f"{kind}_{hashlib.sha256(repr((kind, files)).encode()).hexdigest()[:8]}"


def latent_frame_index(num_frames: int, num_latents: int, temporal_factor: int) -> np.ndarray:
    """The video frame whose caption each latent frame carries: the last one it encodes. A causal autoencoder
    (t = 1 + (T - 1) / f) maps latent j to video frame f j; a per-frame one (f = 1) to j. ValueError otherwise."""
    if temporal_factor == 1 and num_latents == num_frames:
        return np.arange(num_frames, dtype=np.int32)
    if num_latents != 1 + (num_frames - 1) // temporal_factor or (num_frames - 1) % temporal_factor:
        raise ValueError(f"a clip of {num_frames} frames encoded to {num_latents} latent frames: a causal autoencoder "
                         f"with temporal factor {temporal_factor} needs 1 + {temporal_factor} k frames per clip "
                         f"(data.clip_len, e.g. {1 + temporal_factor * max(1, (num_frames - 1) // temporal_factor)})")
    return (temporal_factor * np.arange(num_latents)).astype(np.int32)


def part_range(num_records: int, part: int, num_parts: int) -> range:
    """The frames records of part ``part`` of ``num_parts``: [part n / N, (part + 1) n / N)."""
    if not (isinstance(num_parts, int) and num_parts >= 1 and isinstance(part, int) and 0 <= part < num_parts):
        raise ValueError(f"part={part!r} of num_parts={num_parts!r}: need 0 <= part < num_parts")
    return range(part * num_records // num_parts, (part + 1) * num_records // num_parts)


# ---------------------------------------------------------------------------------------------------- the dataset

@dataclasses.dataclass(eq=False)
class LatentClipsConfig(tfds.core.BuilderConfig):
    """``frames``: the frames dataset's tfds name ("video_folder/x_f256...", same data_dir); ``autoencoder``:
    ``autoencoder_identity``; ``latent_shape``: one clip's [t, h, w, C]; ``part`` of ``num_parts``."""

    frames: str = ""
    autoencoder: str = ""
    latent_shape: tuple[int, int, int, int] = (0, 0, 0, 0)
    part: int = 0
    num_parts: int = 1


def latent_clips_config(frames: str, autoencoder: str, latent_shape: Sequence[int], part: int = 0,
                        num_parts: int = 1) -> LatentClipsConfig:
    """The config of part ``part`` of ``frames``' latents by ``autoencoder``; its name joins all three."""
    if "/" not in frames:
        raise ValueError(f"frames={frames!r} must be a tfds name with its config: 'dataset/config'")
    part_range(0, part, num_parts)
    suffix = f"__part{part}of{num_parts}" if num_parts > 1 else ""
    name = f"{frames.replace('/', '__')}__{autoencoder}{suffix}"
    return LatentClipsConfig(name=name, frames=frames, autoencoder=autoencoder,
                             latent_shape=tuple(int(v) for v in latent_shape), part=part, num_parts=num_parts,
                             description=f"latents of {frames} by the autoencoder {autoencoder}")


class LatentClips(derived.DerivedDataset, config_function="latent_clips_config", encoder="an autoencoder"):
    """Per-clip latents of a frames dataset's "train" split (see the module docstring). Reading needs only the
    config; building also ``frames_builder`` (prepared, in the same data_dir), ``encode_clip`` (``clip_encoder``)
    and ``temporal_factor``."""

    def __init__(self, *, encode_clip: Optional[EncodeClip] = None, temporal_factor: int = 1, **kwargs):
        super().__init__(encoder=encode_clip, **kwargs)
        self._temporal_factor = temporal_factor

    def _features(self, config: LatentClipsConfig) -> dict:
        return {
            "latents": tfds.features.Tensor(shape=tuple(config.latent_shape), dtype=LATENT_DTYPE),
            "captions": tfds.features.Text(),
            "frame_index": tfds.features.Tensor(shape=(config.latent_shape[0],), dtype=np.int32),
        }

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        self._check_build_inputs()
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        cfg: LatentClipsConfig = self.builder_config
        frames = self._frames_builder.as_data_source("train")
        records = part_range(len(frames), cfg.part, cfg.num_parts)
        bar = tqdm(records, desc=f"latents {cfg.part + 1}/{cfg.num_parts}", unit="clip",
                   disable=not self._show_progress, dynamic_ncols=True)
        for index in bar:
            record = frames[index]
            yield index, latent_record(record, self._encoder, self._temporal_factor, cfg.latent_shape)


def latent_record(record: dict, encode_clip: EncodeClip, temporal_factor: int,
                  latent_shape: Sequence[int]) -> dict:
    """The LatentClips record of one frames record ({"frames", "captions", "id"})."""
    clip = np.asarray(record["frames"])
    latents = encode_clip(clip)
    if tuple(latents.shape) != tuple(latent_shape):
        raise ValueError(f"clip {int(record['id'])} encoded to latents of shape {latents.shape}, not the "
                         f"{tuple(latent_shape)} of the dataset's other clips")
    if not np.all(np.isfinite(latents)):
        raise ValueError(f"clip {int(record['id'])}: its latents are not finite in float16 (an autoencoder "
                         f"beyond float16's range of 65504, or broken weights)")
    index = latent_frame_index(clip.shape[0], latents.shape[0], temporal_factor)
    captions = split_captions(record["captions"])
    return {"id": int(record["id"]), "latents": latents, "frame_index": index,
            "captions": "\n".join(captions[i] for i in index)}


def clip_encoder(autoencoder, params=None) -> EncodeClip:
    """``encode_clip(uint8 [T, H, W, 3]) -> float16 [t, h, w, C]`` by ``autoencoder.encode`` (pixels in [-1, 1]),
    jitted once per clip shape (every clip of a dataset has one)."""
    params = autoencoder.params if params is None else params

    @jax.jit
    def run(params, clip):
        return autoencoder.encode(params, frames_to_float(clip)[None])[0].astype(LATENT_DTYPE)

    return lambda clip: np.asarray(jax.device_get(run(params, jnp.asarray(clip))))


class PartsSource(Sequence):
    """The records of several random-access sources as one sequence, in order (the parts of a LatentClips
    dataset), optionally only ``records`` of them (one process's slice)."""

    def __init__(self, parts: Sequence[Sequence[dict]], records: Optional[range] = None):
        self._parts = list(parts)
        self._starts = np.cumsum([0] + [len(p) for p in self._parts])
        self.records = range(int(self._starts[-1])) if records is None else records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        index = self.records[i]
        part = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self._parts[part][index - int(self._starts[part])]


def as_training_source(builders: Sequence[LatentClips], process_index: int = 0, process_count: int = 1) -> PartsSource:
    """The prepared parts (in part order) as one random-access source of ``process_index``'s contiguous slice of
    the records (training: every process reads its own; precomputed caption embeddings are sliced alike)."""
    parts = [b.as_data_source("train") for b in builders]
    total = sum(len(p) for p in parts)
    return PartsSource(parts, part_range(total, process_index, process_count))

