"""The one way videos become model-sized frames: the ``video_folder`` training data builder and video-to-video input
(``sampling.video_io.read_video``) both read through ``iter_frames``, so a model's input is preprocessed exactly as
its training data was (a different filter shifts edge pixels by several levels: inputs the model never saw).

Numpy, imageio and Pillow only (no TensorFlow, no JAX): the data builder runs without either.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

# decoded by imageio's FFMPEG plugin (imageio-ffmpeg's bundled binary), whatever other plugins are installed, so a
# file gives the same pixels on every machine; other files (.gif, images) go to imageio's default plugin
FFMPEG_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """uint8 [h, w, 3] of a decoded frame: alpha dropped, grey ([h, w] or [h, w, 1]) expanded. ValueError on another
    shape."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4):
        raise ValueError(f"a frame of shape {frame.shape} is not an image ([H, W], [H, W, 1 | 3 | 4])")
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    return frame[..., :3].astype(np.uint8)


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop uint8 [h, w, 3] to the aspect of size = (height, width), then resize to it.

    Filter: Pillow's BOX (area average) when shrinking, the case of every real video: each output pixel is the mean
    of the source pixels it covers, so thin edges and small objects are averaged, not aliased or sharpened (no
    ringing, unlike LANCZOS), and an integer factor is an exact block mean. BILINEAR only where the crop is smaller
    than the target, since BOX enlarging is nearest-neighbour blocks. These are the filters the data builder has
    always used, so datasets prepared before it shared this reader (their directory name does not encode the filter)
    still match new inputs.
    """
    from PIL import Image  # a dependency of imageio

    h, w = frame.shape[:2]
    th, tw = size
    if h * tw > w * th:  # too tall
        ch = max(1, round(w * th / tw))
        frame = frame[(h - ch) // 2:(h - ch) // 2 + ch]
    elif h * tw < w * th:  # too wide
        cw = max(1, round(h * tw / th))
        frame = frame[:, (w - cw) // 2:(w - cw) // 2 + cw]
    if frame.shape[:2] == (th, tw):
        return np.ascontiguousarray(frame)
    shrink = frame.shape[0] >= th and frame.shape[1] >= tw
    resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(frame).resize((tw, th), resample=resample))


def iter_frames(path: str, size: tuple[int, int], frame_stride: int = 1,
                max_frames: int | None = None) -> Iterator[np.ndarray]:
    """uint8 [H, W, 3] frames of the video at ``path`` (``to_rgb``, then ``fit_frame`` to size = (H, W)): every
    ``frame_stride``-th frame, at most ``max_frames`` (None or 0: all). Streams: one decoded frame in memory at a time,
    and decoding stops at ``max_frames``. A file that cannot be decoded raises the decoder's own exception (imageio's
    plugins raise OSError, ValueError, RuntimeError, ...), possibly after some frames."""
    import imageio.v3 as iio

    plugin = {"plugin": "FFMPEG"} if os.path.splitext(os.fspath(path))[1].lower() in FFMPEG_EXTENSIONS else {}
    kept = 0
    for i, frame in enumerate(iio.imiter(path, **plugin)):
        if i % frame_stride:
            continue
        yield fit_frame(to_rgb(frame), size)
        kept += 1
        if max_frames and kept >= max_frames:
            return
