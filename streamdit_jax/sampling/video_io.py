"""Progressive video writers: a run killed midway leaves a playable file of what was generated.

- .mp4: frames are piped to ffmpeg (imageio-ffmpeg's bundled binary) as FRAGMENTED MP4 (``frag_keyframe+empty_moov``),
  so the file is playable at every fragment boundary even if the process dies without finalising it;
- .gif: the whole GIF is rewritten atomically (temp file + rename) every ``gif_every`` frames and at close.
"""
from __future__ import annotations

import os
import warnings

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

SUFFIXES = (".mp4", ".gif")


class ProgressiveWriter:
    def __init__(self, path: str, fps: int = 8, gif_every: int = 16):
        ext = os.path.splitext(path)[1].lower()
        if ext not in SUFFIXES:
            raise ValueError(f"output {path!r}: unsupported extension {ext!r}; valid: {SUFFIXES}")
        self.path, self.ext, self.fps, self.gif_every = path, ext, fps, gif_every
        self.frames: list[np.ndarray] = []
        self._mp4 = None
        self._since_gif = 0

    def write(self, frames: np.ndarray) -> None:
        """Appends uint8 frames [n, H, W, 3]."""
        if self.ext == ".mp4":
            if self._mp4 is None:
                h, w = frames.shape[1:3]
                self._mp4 = imageio_ffmpeg.write_frames(
                    self.path, (w, h), fps=self.fps, macro_block_size=1, quality=8,
                    output_params=["-movflags", "frag_keyframe+empty_moov", "-g", str(self.fps)])
                with warnings.catch_warnings():
                    # Starting ffmpeg forks this (JAX-threaded) process, and JAX warns at every fork. The child
                    # only exec()s the ffmpeg binary and never runs Python or JAX, so the deadlock it warns of
                    # cannot happen here.
                    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
                    self._mp4.send(None)
            for f in frames:
                self._mp4.send(np.ascontiguousarray(f))
        else:
            self.frames.extend(frames)
            self._since_gif += len(frames)
            if self._since_gif >= self.gif_every:
                self._flush_gif()

    def _flush_gif(self) -> None:
        tmp = self.path + ".tmp.gif"
        iio.imwrite(tmp, np.stack(self.frames), duration=1000 // self.fps, loop=0)
        os.replace(tmp, self.path)
        self._since_gif = 0

    def close(self) -> None:
        if self._mp4 is not None:
            self._mp4.close()
            self._mp4 = None
        if self.ext == ".gif" and self.frames:
            self._flush_gif()


def read_video(path: str, frame_size: int, max_frames: int | None = None) -> np.ndarray:
    """uint8 frames [T, frame_size, frame_size, 3] from any video imageio reads (mp4 via imageio-ffmpeg, gif, ...):
    alpha dropped, grey expanded, centre-cropped to a square and resized (bilinear). Raises ValueError naming the
    path when it cannot be read or holds no frames."""
    from PIL import Image
    try:
        frames = iio.imread(path, index=None)
    except Exception as e:  # imageio raises plugin-specific errors (OSError, ValueError, RuntimeError, ...)
        raise ValueError(f"input video {path!r} cannot be read: {type(e).__name__}: {e}") from e
    frames = np.asarray(frames)
    if frames.ndim == 3:  # a single image, or grey frames [T, H, W]
        frames = frames[None] if frames.shape[-1] in (3, 4) else frames[..., None]
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"input video {path!r} holds no frames (array of shape {frames.shape})")
    frames = frames[:max_frames] if max_frames else frames
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    frames = frames[..., :3].astype(np.uint8)
    h, w = frames.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    out = [np.asarray(Image.fromarray(f[top:top + side, left:left + side]).resize((frame_size, frame_size),
                                                                                 Image.BILINEAR)) for f in frames]
    return np.stack(out)
