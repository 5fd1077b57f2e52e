"""Progressive video writers: a run killed midway leaves a playable file of what was generated.

- .mp4: frames are piped to ffmpeg (imageio-ffmpeg's bundled binary) as FRAGMENTED MP4 (``frag_keyframe+empty_moov``),
  so the file is playable at every fragment boundary even if the process dies without finalising it;
- .gif: the whole GIF is rewritten atomically (temp file + rename) every ``gif_every`` frames and at close; frame
  delays are whole 1/100 s (``gif_delay_ms``), so at most MAX_GIF_FPS frames per second.

Bad arguments fail at construction, before any frame exists (``check_video_path``, ``check_fps``: ValueError naming
the value); applications call the same checks on their flags before loading a model. A write that fails later
(ffmpeg could not create or write the file, the disk filled up) raises ``VideoWriteError`` from ``write`` or
``close``; ``close`` also reads the file back and checks that it holds every frame written.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import warnings

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from streamdit_jax import video_reader

SUFFIXES = (".mp4", ".gif")
MAX_FPS = 120  # frames per second: above what displays show; a larger value is a typo
MAX_GIF_FPS = 50  # GIF frame delays are whole 1/100 s, and viewers slow down delays under 2/100 s


class VideoWriteError(OSError):
    """The output video could not be written, or does not hold the frames written (the message names the path)."""


def check_writable(path, name: str = "output") -> str:
    """``path`` as a str, or ValueError naming it unless a file can be made there: not a directory, and its directory
    exists and is writable, tested by creating and removing a temporary file in it (catches read-only mounts, /proc,
    permissions). An existing file at ``path`` is fine (it is replaced)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{name}={path!r} must be a file path")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{name}={path!r} is a directory; give a file path")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"{name}={path!r}: directory {directory!r} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=directory)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"{name}={path!r}: directory {directory!r} is not writable (creating a file there failed: "
                         f"{e.strerror or e})") from e
    return path


def check_video_path(path, name: str = "output") -> str:
    """The extension of a video ``path`` that can be written (lower case, one of SUFFIXES), or ValueError naming it
    (an unsupported extension, or ``check_writable``'s reasons)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{name}={path!r} must be a file path")
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in SUFFIXES:
        raise ValueError(f"{name}={os.fspath(path)!r}: unsupported extension {ext!r}; valid: {SUFFIXES}")
    check_writable(path, name)
    return ext


def check_fps(fps, ext: str = ".mp4", name: str = "fps") -> int:
    """``fps`` as an int, or ValueError naming it: an integer in [1, MAX_FPS], [1, MAX_GIF_FPS] for a .gif."""
    top = MAX_GIF_FPS if ext == ".gif" else MAX_FPS
    is_int = isinstance(fps, (int, np.integer)) and not isinstance(fps, (bool, np.bool_))
    if not is_int or not 1 <= fps <= top:
        why = (" (GIF frame delays are whole 1/100 s and viewers slow down delays under 2/100 s; use .mp4)"
               if ext == ".gif" and is_int and fps > top else "")
        raise ValueError(f"{name}={fps!r} must be an integer number of frames per second in [1, {top}] for a {ext} "
                         f"output{why}")
    return int(fps)


def gif_delay_ms(fps: int) -> int:
    """A GIF frame's delay at ``fps`` in milliseconds, rounded to the whole 1/100 s the format stores."""
    return 10 * max(1, round(100 / fps))


def count_frames(path: str, fps: int | None = None) -> int:
    """Frames in a video written by ProgressiveWriter: an .mp4's video packets (ffmpeg stream copy, no decoding), a
    .gif's frames by their delays at ``fps`` (needed for a .gif: Pillow merges identical consecutive frames into one
    frame showing for their summed delays). Raises VideoWriteError naming the path when it cannot be read."""
    if not os.path.isfile(path):
        raise VideoWriteError(f"output {path!r} does not exist (it was not created, or was removed)")
    if path.lower().endswith(".gif"):
        from PIL import Image
        if fps is None:
            raise ValueError(f"count_frames({path!r}) of a .gif needs its fps (identical consecutive frames merge)")
        try:
            with Image.open(path) as im:
                total_ms = 0
                for i in range(getattr(im, "n_frames", 1)):
                    im.seek(i)
                    total_ms += int(im.info.get("duration", 0))
        except Exception as e:  # Pillow raises plugin-specific errors on a broken file
            raise VideoWriteError(f"output {path!r} cannot be read back: {type(e).__name__}: {e}") from e
        return round(total_ms / gif_delay_ms(fps))
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-i", path, "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    counts = re.findall(r"frame=\s*(\d+)", r.stderr)
    if r.returncode != 0 or not counts:
        raise VideoWriteError(f"output {path!r} cannot be read back by ffmpeg (exit {r.returncode}): "
                              f"{r.stderr.strip()[-500:]}")
    return int(counts[-1])


class ProgressiveWriter:
    """Writes uint8 frames [n, H, W, 3] to ``path`` (.mp4 or .gif) as they come; ``close()`` finalises the file,
    checks that it holds every frame written and returns that count. The constructor validates what it can before
    any frame exists (ValueError naming the value), so an application fails before its expensive part."""

    def __init__(self, path, fps: int = 8, gif_every: int = 16):
        ext = check_video_path(path)
        self.fps = check_fps(fps, ext)
        path = os.fspath(path)
        if isinstance(gif_every, bool) or not isinstance(gif_every, (int, np.integer)) or gif_every < 1:
            raise ValueError(f"gif_every={gif_every!r} must be an int >= 1 (frames between GIF rewrites)")
        self.path, self.ext, self.gif_every = path, ext, int(gif_every)
        self.frames: list[np.ndarray] = []
        self.frames_written = 0  # frames accepted by write()
        self._shape = None
        self._mp4 = None
        self._since_gif = 0
        self._closed = False

    def write(self, frames: np.ndarray) -> None:
        """Appends uint8 frames [n, H, W, 3] (the same H, W every call). Raises VideoWriteError when the file cannot
        be written (ffmpeg exited), ValueError on frames of another kind or after ``close``."""
        if self._closed:
            raise ValueError(f"output {self.path!r} is closed")
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or \
                (self._shape is not None and frames.shape[1:] != self._shape):
            want = "[n, H, W, 3]" if self._shape is None else f"[n, {self._shape[0]}, {self._shape[1]}, 3]"
            raise ValueError(f"frames for {self.path!r} must be uint8 {want}, got {frames.dtype} {frames.shape}")
        self._shape = frames.shape[1:]
        if not len(frames):
            return
        if self.ext == ".mp4":
            try:
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
                    self.frames_written += 1  # per frame: an interrupted write still counts what ffmpeg got
            except Exception as e:  # a broken pipe once ffmpeg has exited; imageio-ffmpeg's probing of a bad binary
                first_line = (str(e).splitlines() or [""])[0]
                raise VideoWriteError(f"output {self.path!r}: ffmpeg stopped taking frames after "
                                      f"{self.frames_written} ({type(e).__name__}: {first_line}; its own messages "
                                      f"above say why)") from e
        else:
            self.frames.extend(frames)
            self.frames_written += len(frames)
            self._since_gif += len(frames)
            if self._since_gif >= self.gif_every:
                self._flush_gif()

    def _flush_gif(self) -> None:
        tmp = self.path + ".tmp.gif"
        try:
            iio.imwrite(tmp, np.stack(self.frames), duration=gif_delay_ms(self.fps), loop=0)
            os.replace(tmp, self.path)
        except OSError as e:
            raise VideoWriteError(f"output {self.path!r} cannot be written: {e}") from e
        self._since_gif = 0

    def close(self) -> int:
        """Finalises the file and returns the frames it holds: all frames written (0: none were, and no file was
        made). Raises VideoWriteError naming the path when the file is missing or holds another count (ffmpeg could
        not create or finish it). A second close returns the same count."""
        if self._closed:
            return self.frames_written
        self._closed = True
        if self._mp4 is not None:
            mp4, self._mp4 = self._mp4, None
            try:
                mp4.close()
            except OSError as e:
                raise VideoWriteError(f"output {self.path!r}: ffmpeg failed at close: {e}") from e
        if self.ext == ".gif" and self.frames:
            self._flush_gif()
        if not self.frames_written:
            return 0
        held = count_frames(self.path, self.fps)
        if held != self.frames_written:
            raise VideoWriteError(f"output {self.path!r} holds {held} frames, but {self.frames_written} were written "
                                  f"(ffmpeg's messages above say why)")
        return held


def read_video(path: str, frame_size: int, max_frames: int | None = None) -> np.ndarray:
    """uint8 frames [T, frame_size, frame_size, 3] from any video imageio reads (mp4 via imageio-ffmpeg, gif, ...),
    the first ``max_frames`` (None or 0: all): read by ``video_reader.iter_frames``, the reader of the training data,
    so alpha dropped, grey expanded, centre-cropped to a square and resized with the same filter as the frames the
    model was trained on. Raises ValueError naming the path when it cannot be read or holds no frames."""
    try:
        frames = list(video_reader.iter_frames(path, (frame_size, frame_size), max_frames=max_frames))
    except Exception as e:  # imageio raises plugin-specific errors (OSError, ValueError, RuntimeError, ...)
        raise ValueError(f"input video {path!r} cannot be read: {type(e).__name__}: {e}") from e
    if not frames:
        raise ValueError(f"input video {path!r} holds no frames")
    return np.stack(frames)
