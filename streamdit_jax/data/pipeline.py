"""Input pipeline: tfds data source -> grain (shuffle, random window, tokenize, batch) -> global jax.Array.

Buffered flow matching (Sec. 3-4 of the StreamDiT paper) trains on a buffer of consecutive frames; the text
condition of a window is the caption active at its LAST (newest) frame, the prompt the stream is moving towards
when a prompt switch happens inside the buffer (Sec. 6). Each process reads its own split of the data
(``tfds.split_for_jax_process``), builds per-process batches here, and `to_global_batch` assembles them into
arrays sharded over the mesh.

The pipeline is a grain dataset whose iterator has ``get_state()``/``set_state()``; saving that state with the
model checkpoint resumes the data exactly where it stopped.
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
    """A random window of window_len consecutive frames of a clip, with the tokens of its last frame's caption (by
    the model's text encoder's ``tokenize``) and "steady": whether that caption holds at every frame of the window
    (no prompt switch inside it).

    The rng is grain's per-record generator (derived from the pipeline seed and the record's index), so the
    window is deterministic and reproducible after restoring an iterator. with_provenance adds "id" (the clip's
    id) and "start" (the window's first frame), for tests and debugging.
    """

    window_len: int
    tokenize: Callable[[Sequence[str]], np.ndarray]  # models.text.TextEncoder.tokenize
    with_provenance: bool = False
    # (caption, rng) -> the wording the model is given (e.g. shapes_wording.TrainingRewording); None: as written.
    # Drawn after the window, so the windows do not depend on it.
    reword: Optional[Callable[[str, np.random.Generator], str]] = None

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
        frames = element["frames"]
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
        prompt = text if self.reword is None else self.reword(text, rng)
        out = {"frames": np.asarray(frames[start:start + self.window_len]),
               "tokens": np.asarray(self.tokenize([prompt])[0], np.int32),
               "steady": np.bool_(all(c == text for c in window_captions))}
        if self.with_provenance:
            out["id"] = np.int64(element["id"])
            out["start"] = np.int32(start)
        return out


def make_train_dataset(data_source: Sequence[dict[str, Any]], *, window_len: int, batch_size: int, seed: int,
                       tokenize: Callable[[Sequence[str]], np.ndarray], shuffle: bool = True, num_epochs: int | None = None,
                       read_threads: int = 4, prefetch_buffer_size: int | None = None,
                       with_provenance: bool = False,
                       reword: Optional[Callable[[str, np.random.Generator], str]] = None) -> grain.IterDataset:
    """Per-process batches {"frames": uint8 [batch_size, window_len, H, W, 3], "tokens": int32 [batch_size,
    text max_len] (``tokenize``: the text encoder's), "steady": bool [batch_size]} (drop_remainder; see `SampleWindow`), from a random-access source
    such as ``tfds.data_source(name, split=tfds.split_for_jax_process("train"), data_dir=...)``.

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
    ds = grain.MapDataset.source(data_source).seed(seed)
    if shuffle:
        ds = ds.shuffle()
    ds = ds.repeat(num_epochs)
    ds = ds.random_map(SampleWindow(window_len, tokenize, with_provenance, reword))
    prefetch = max(16, 2 * batch_size) if prefetch_buffer_size is None else prefetch_buffer_size
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch))
    return ds.batch(batch_size, drop_remainder=True)


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
