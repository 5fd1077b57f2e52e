"""Input pipeline: tfds data source -> grain (shuffle, random window, tokenize, batch) -> global jax.Array.

Buffered flow matching (Sec. 3-4 of the StreamDiT paper) trains on a buffer of consecutive frames; the text
condition of a window is the caption active at its LAST (newest) frame, the prompt the stream is moving towards
when a prompt switch happens inside the buffer (Sec. 6). Each process reads its own split of the data
(``tfds.split_for_jax_process``), builds per-process batches here, and `to_global_batch` assembles them into
arrays sharded over the mesh.

The pipeline is a grain dataset whose iterator has ``get_state()``/``set_state()``; saving that state with the
model checkpoint resumes the data exactly where it stopped.

A frozen text encoder's caption embeddings can be precomputed (``data.caption_embeddings``): their records are zipped
with the clips by index (``JoinCaptionEmbeddings`` checks the ids) and the windows carry embeddings instead of tokens.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import grain
import jax
import numpy as np
from jax.sharding import Mesh, Sharding

from streamdit_jax import parallel
from streamdit_jax.data.tfds_builders import split_captions


@dataclasses.dataclass(frozen=True)
class SampleWindow(grain.transforms.RandomMap):
    """A random window of window_len consecutive frames of a clip (or of latent frames: a ``data.latent_clips``
    record's "latents" window, captioned per latent frame), with the tokens of its last frame's caption (by
    the model's text encoder's ``tokenize``) and "steady": whether that caption holds at every frame of the window
    (no prompt switch inside it). With ``tokenize`` None the clip carries its captions' precomputed embeddings
    (``JoinCaptionEmbeddings``): the window gets "text" [L, D] / "text_mask" [L] of the same caption instead, after
    a check that they were computed from it.

    The rng is grain's per-record generator (derived from the pipeline seed and the record's index), so the
    window is deterministic and reproducible after restoring an iterator. with_provenance adds "id" (the clip's
    id) and "start" (the window's first frame), for tests and debugging.
    """

    window_len: int
    tokenize: Optional[Callable[[Sequence[str]], np.ndarray]]  # models.text.TextEncoder.tokenize; None: precomputed
    with_provenance: bool = False
    # (caption, rng) -> the wording the model is given (e.g. shapes_wording.TrainingRewording); None: as written.
    # Drawn after the window, so the windows do not depend on it.
    reword: Optional[Callable[[str, np.random.Generator], str]] = None

    def __post_init__(self):
        if self.tokenize is None and self.reword is not None:
            raise ValueError("SampleWindow: precomputed caption embeddings (tokenize=None) cannot be reworded: they "
                             "were computed from the captions as written")

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
        key = "latents" if "latents" in element else "frames"  # a LatentClips record: windows of latent frames
        frames = element[key]
        clip_len = frames.shape[0]
        if clip_len < self.window_len:
            raise ValueError(f"clip {element.get('id')} has {clip_len} frames, fewer than "
                             f"window_len={self.window_len}")
        captions = split_captions(element["captions"])
        if len(captions) != clip_len:
            raise ValueError(f"clip {element.get('id')} has {len(captions)} captions for {clip_len} frames")
        start = int(rng.integers(0, clip_len - self.window_len + 1))
        window_captions = captions[start:start + self.window_len]
        text = window_captions[-1]
        out = {key: np.asarray(frames[start:start + self.window_len]),
               "steady": np.bool_(all(c == text for c in window_captions))}
        if self.tokenize is None:
            last = start + self.window_len - 1  # caption embeddings are indexed by video frame
            out.update(precomputed_text(element, int(element["frame_index"][last]) if key == "latents" else last, text))
        else:
            prompt = text if self.reword is None else self.reword(text, rng)
            out["tokens"] = np.asarray(self.tokenize([prompt])[0], np.int32)
        if self.with_provenance:
            out["id"] = np.int64(element["id"])
            out["start"] = np.int32(start)
        return out


def precomputed_text(element: dict[str, Any], frame: int, caption: str) -> dict[str, np.ndarray]:
    """{"text", "text_mask"} of frame ``frame``'s caption from a clip joined with its caption embeddings
    (``JoinCaptionEmbeddings``). ValueError unless they were computed from ``caption`` (the frame's caption as the
    frames dataset has it): embeddings of another dataset's captions must never condition these frames."""
    row = int(element["caption_index"][frame])
    stored = split_captions(element["distinct_captions"])[row]
    if stored != caption:
        raise ValueError(f"clip {element.get('id')} frame {frame}: its caption is {caption!r} but the caption "
                         f"embeddings were computed from {stored!r}: they belong to another dataset (re-run "
                         f"experiments.precompute_text)")
    return {"text": np.asarray(element["text"][row]), "text_mask": np.asarray(element["text_mask"][row], np.int32)}


@dataclasses.dataclass(frozen=True)
class JoinCaptionEmbeddings(grain.transforms.Map):
    """(clip, its caption embeddings record) -> the clip with "text", "text_mask", "caption_index" and
    "distinct_captions" (``data.caption_embeddings``). ValueError when the two records are not of the same clip."""

    def map(self, pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        clip, embeddings = pair
        if int(clip["id"]) != int(embeddings["id"]):
            raise ValueError(f"the frames dataset's clip {int(clip['id'])} is paired with the caption embeddings of "
                             f"clip {int(embeddings['id'])}: the embeddings were not written for this dataset's "
                             f"records (re-run experiments.precompute_text)")
        keys = ("text", "text_mask", "caption_index", "distinct_captions")
        return {**clip, **{k: embeddings[k] for k in keys}}


@dataclasses.dataclass(frozen=True, eq=False)
class WithNullText(grain.transforms.Map):
    """Adds the null prompt's precomputed embeddings {"null_text": [1, L, D], "null_text_mask": [1, L]} to a batch
    (caption dropout; ``steps.batch_text``)."""

    null_text: np.ndarray
    null_text_mask: np.ndarray

    def map(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**batch, "null_text": self.null_text, "null_text_mask": self.null_text_mask}


def make_train_dataset(data_source: Sequence[dict[str, Any]], *, window_len: int, batch_size: int, seed: int,
                       tokenize: Optional[Callable[[Sequence[str]], np.ndarray]] = None, shuffle: bool = True,
                       num_epochs: int | None = None, read_threads: int = 4, prefetch_buffer_size: int | None = None,
                       with_provenance: bool = False,
                       reword: Optional[Callable[[str, np.random.Generator], str]] = None,
                       caption_embeddings: Optional[Sequence[dict[str, Any]]] = None,
                       null_text: Optional[dict[str, np.ndarray]] = None) -> grain.IterDataset:
    """Per-process batches {"frames": uint8 [batch_size, window_len, H, W, 3], "tokens": int32 [batch_size,
    text max_len] (``tokenize``: the text encoder's), "steady": bool [batch_size]} (drop_remainder; see
    `SampleWindow`), from a random-access source such as ``tfds.data_source(name,
    split=tfds.split_for_jax_process("train"), data_dir=...)``.

    Precomputed text: ``caption_embeddings`` (instead of ``tokenize``) is the same split of the frames' caption
    embeddings (``data.caption_embeddings``), zipped with the frames record by record (ids checked); batches then
    carry "text" float16 [batch_size, L, D] and "text_mask" int32 [batch_size, L] instead of "tokens", and with
    ``null_text`` ({"null_text" [1, L, D], "null_text_mask" [1, L]}, for caption dropout) those two as well. The
    windows are the same as with tokens for the same seed.

    Records are shuffled (each epoch differently) and repeated num_epochs times (None: forever); every record gets
    a fresh random window each epoch. All randomness comes from `seed` (grain's pipeline seed), so the stream of
    batches is a pure function of (data, seed), and ``iter(ds).get_state()`` / ``set_state(state)`` resume it.
    read_threads/prefetch_buffer_size configure grain's threaded reading (prefetch in elements, default
    2 * batch_size, at least 16). ``reword``: see `SampleWindow` (the "steady" flag compares the captions as written).
    """
    for key, value in (("window_len", window_len), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be an int >= 1, got {value!r}")
    if num_epochs is not None and (not isinstance(num_epochs, int) or num_epochs < 1):
        raise ValueError(f"num_epochs must be None (forever) or an int >= 1, got {num_epochs!r}")
    if len(data_source) == 0:
        raise ValueError("make_train_dataset: the data source is empty")
    if num_epochs is not None and len(data_source) * num_epochs < batch_size:
        raise ValueError(f"{len(data_source)} records x {num_epochs} epochs cannot fill one batch of {batch_size}")
    if (tokenize is None) == (caption_embeddings is None):
        raise ValueError("make_train_dataset needs exactly one of tokenize (text encoded in the step) and "
                         "caption_embeddings (precomputed)")
    if null_text is not None and caption_embeddings is None:
        raise ValueError("make_train_dataset: null_text goes with caption_embeddings (tokens bring their own)")
    ds = grain.MapDataset.source(data_source)
    if caption_embeddings is not None:
        if len(caption_embeddings) != len(data_source):
            raise ValueError(f"the caption embeddings hold {len(caption_embeddings)} records for the "
                             f"{len(data_source)} clips of the frames dataset: they were not written for it (re-run "
                             f"experiments.precompute_text)")
        ds = grain.experimental.ZipMapDataset([ds, grain.MapDataset.source(caption_embeddings)])
        ds = ds.map(JoinCaptionEmbeddings())
    ds = ds.seed(seed)
    if shuffle:
        ds = ds.shuffle()
    ds = ds.repeat(num_epochs)
    ds = ds.random_map(SampleWindow(window_len, tokenize, with_provenance, reword))
    prefetch = max(16, 2 * batch_size) if prefetch_buffer_size is None else prefetch_buffer_size
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch))
    ds = ds.batch(batch_size, drop_remainder=True)
    if null_text is not None:
        ds = ds.map(WithNullText(np.asarray(null_text["null_text"]), np.asarray(null_text["null_text_mask"])))
    return ds


def to_global_batch(batch: dict[str, np.ndarray], sharding: Sharding | Mesh | dict[str, Sharding]) -> dict:
    """Assemble each process's local batch into global jax.Arrays (leading axis = batch, concatenated over processes).

    sharding: one Sharding for every leaf, a dict of Shardings keyed like the batch, or a Mesh (each leaf then gets
    `parallel.batch_sharding`, i.e. the batch axis over ("data", "fsdp")).
    """
    def one(key, x):
        x = np.asarray(x)
        if isinstance(sharding, Mesh):
            s = parallel.batch_sharding(sharding, x.ndim)
        elif isinstance(sharding, dict):
            if key not in sharding:
                raise KeyError(f"to_global_batch: no sharding for batch key {key!r} (have {sorted(sharding)})")
            s = sharding[key]
        else:
            s = sharding
        return jax.make_array_from_process_local_data(s, x)

    return {key: one(key, x) for key, x in batch.items()}
