"""Video-to-video input encoded as the stream advances: the input file is decoded and encoded one chunk at a time,
when the stream first needs its latents, not whole before the first frame (a long input would otherwise cost its
whole encode in time to first frame, and its every frame in memory).

A causal video autoencoder (Wan's VAE) encodes chunks with its carried state (``encode_chunk``): the stream's first
chunk of c latent frames reads 1 + f (c - 1) video frames, every later one f c, and the latents equal one encode of
the whole input. A per-frame autoencoder encodes each chunk's frames on their own, which is the same.
"""
from __future__ import annotations

import itertools
import os
from typing import Iterator, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax import video_reader
from streamdit_jax.pixels import frames_to_float


def count_input_frames(path: str, max_frames: Optional[int] = None) -> int:
    """Frames of an input video (an mp4's by ffmpeg without decoding them to pixels; other files by decoding), at
    most ``max_frames`` (None or 0: all). ValueError naming the path when it cannot be read or holds no frames."""
    if not os.path.isfile(path):
        raise ValueError(f"input video {path!r} is not a file")
    try:
        if path.lower().endswith(video_reader.FFMPEG_EXTENSIONS):
            import imageio_ffmpeg
            count = int(imageio_ffmpeg.count_frames_and_secs(path)[0])
        else:
            count = sum(1 for _ in video_reader.iter_frames(path, (8, 8), max_frames=max_frames or None))
    except Exception as e:  # the decoders raise plugin-specific errors (OSError, RuntimeError, ...)
        raise ValueError(f"input video {path!r} cannot be read: {type(e).__name__}: {e}") from e
    if count < 1:
        raise ValueError(f"input video {path!r} holds no frames")
    return min(count, max_frames) if max_frames else count


class StreamedVideoLatents:
    """The latents [t, h, w, C] of an input video as a sequence the Streamer indexes (``video=`` of
    ``Streamer.latents`` / ``frames``): indexing encodes the input up to the latent frames asked for, ``chunk``
    latent frames at a time, and keeps what it encoded. ``frames``: uint8 [H, W, 3] frames (e.g.
    ``video_reader.iter_frames``); ``num_frames`` of them are used, cut to what the autoencoder encodes whole (a
    causal one: 1 + f k)."""

    def __init__(self, frames: Iterator[np.ndarray], num_frames: int, frame_shape: tuple[int, int, int], autoencoder,
                 chunk: int = 1):
        f = autoencoder.temporal_factor
        if num_frames < 1:
            raise ValueError(f"num_frames={num_frames} must be >= 1")
        self._frames, self._ae, self._chunk, self._f = iter(frames), autoencoder, int(chunk), f
        self._causal = hasattr(autoencoder, "encode_chunk")
        length = 1 + (num_frames - 1) // f if self._causal else num_frames
        probe = (1 + f if self._causal else 1,) + tuple(frame_shape)
        self.shape = (length,) + tuple(autoencoder.latent_shape(probe)[1:])
        self._latents: list[np.ndarray] = []
        self._state = None
        self._encode = jax.jit(autoencoder.encode_chunk if self._causal else autoencoder.encode)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def encoded(self) -> int:
        """Latent frames encoded so far."""
        return len(self._latents)

    def __getitem__(self, index) -> np.ndarray:
        wanted = int(np.max(index)) if np.size(index) else -1
        if wanted >= len(self):
            raise IndexError(f"latent frame {wanted} of an input of {len(self)}")
        while self.encoded <= wanted:
            self._encode_next()
        index = np.asarray(index)  # only the frames asked for: stacking all encoded ones grows with the stream
        return np.stack([self._latents[i] for i in index.ravel()]).reshape(index.shape + self.shape[1:])

    def _read(self, n: int) -> np.ndarray:
        frames = list(itertools.islice(self._frames, n))
        if len(frames) < n:
            raise ValueError(f"the input video ended {n - len(frames)} frames before the {self.shape[0]} latent "
                             f"frames its frame count promised")
        return frames_to_float(np.stack(frames))[None]

    def _encode_next(self) -> None:
        c = min(self._chunk, len(self) - self.encoded)
        params = self._ae.params
        if not self._causal:
            latents = self._encode(params, self._read(c))
        else:
            first = self._state is None
            video = self._read(1 + self._f * (c - 1) if first else self._f * c)
            if first:
                self._state = self._ae.init_encode_state(params, video.shape)
            self._state, latents = self._encode(params, self._state, jnp.asarray(video))
        self._latents.extend(np.asarray(latents[0], np.float32))


def streamed_input(path: str, frame_size: Union[int, tuple[int, int]], autoencoder, chunk: int,
                   max_latent_frames: Optional[int] = None) -> StreamedVideoLatents:
    """``StreamedVideoLatents`` of the video file ``path``, read as the training data was (``video_reader``,
    centre-cropped to the aspect of ``frame_size`` (height, width; an int: square) and resized to it), at most
    ``max_latent_frames`` latent frames of it (None or 0: all; a causal autoencoder reads 1 + f (n - 1) video frames
    for n). ValueError naming the path when it cannot be read."""
    f = autoencoder.temporal_factor
    causal = hasattr(autoencoder, "encode_chunk")
    n = max_latent_frames
    count = count_input_frames(path, (1 + f * (n - 1) if causal else n) if n else None)
    size = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)
    frames = video_reader.iter_frames(path, size, max_frames=count)
    return StreamedVideoLatents(frames, count, size + (3,), autoencoder, chunk)
