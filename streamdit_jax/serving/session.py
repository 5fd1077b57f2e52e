"""A live session: ONE stream of a Streamer-like source under a ``LivePrompt``, paced to real time, fanned out to
every viewer, with its replayable record.

A single producer thread iterates ``source.frames(live_prompt, None, seed)`` (the Streamer's own denoise and decode
threads run behind it), releases frame i at i / fps seconds after the first (a frame more than one frame late
re-anchors the clock instead of bursting to catch up, and is counted in ``late_frames``), encodes it once as PNG
behind an 8-byte header (``HEADER``: frame index, prompt id; both big-endian uint32) and publishes that message to
the ``Broadcaster``, which never blocks it. While nobody watches the producer holds its next frame: the Streamer's
bounded queues then stop its denoise thread, so an unwatched server idles, and every frame streamed reaches at least
one viewer. A frame's prompt id is the position, in the session's record, of the switch the frame was generated
under (0: the first prompt), so a page can tell exactly which frames follow a prompt it posted.

``set_prompt`` switches the prompt from the next chunk the stream starts (``LivePrompt.set``); ``record()`` is the
session's schedule record (``schedule_io``: seed, frames streamed, the switches among them, the source's sampling
settings), which ``experiments.evaluate --schedules=`` replays frame for frame with the same checkpoint.
"""
from __future__ import annotations

import bisect
import collections
import io
import logging
import struct
import threading
import time
from typing import Optional

import numpy as np
from PIL import Image

from streamdit_jax.sampling.schedule_io import format_schedule_record, write_schedule_record
from streamdit_jax.sampling.schedules import LivePrompt, check_int, check_seed
from streamdit_jax.serving.broadcaster import Broadcaster

HEADER = struct.Struct(">II")  # frame index, prompt id: the start of every frame message
MAX_PROMPT_BYTES = 1024  # a prompt's UTF-8 length: longer ones are refused (the text encoders read far fewer)
MAX_FPS = 120
_LATENCY_WINDOW = 256  # recent chunk latencies kept (an endless stream would otherwise grow the list forever)
_RECENT_PROMPTS = 16  # switches the state names by id (a page looks up the prompt of the frames it shows)
_STOP_TIMEOUT_S = 60.0  # a producer inside the first chunk (compilation) may take this long to notice a stop

log = logging.getLogger(__name__)


def check_prompt(prompt) -> str:
    """``prompt`` stripped; ValueError for a non-string or empty one, PromptTooLong past MAX_PROMPT_BYTES."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    prompt = prompt.strip()
    if not prompt:
        raise ValueError("prompt is empty; give e.g. 'a blue square moving up'")
    size = len(prompt.encode("utf-8"))
    if size > MAX_PROMPT_BYTES:
        raise PromptTooLong(f"prompt is {size} bytes; at most {MAX_PROMPT_BYTES} bytes (UTF-8) are accepted")
    return prompt


class PromptTooLong(ValueError):
    """A prompt longer than MAX_PROMPT_BYTES."""


def encode_frame(index: int, prompt_id: int, frame: np.ndarray) -> bytes:
    """HEADER + the uint8 [H, W, 3] frame as PNG (lossless: a viewer's pixels are the stream's)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(frame, np.uint8)).save(buf, format="PNG", compress_level=1)
    return HEADER.pack(index, prompt_id) + buf.getvalue()


def decode_frame(message: bytes) -> tuple[int, int, np.ndarray]:
    """(frame index, prompt id, uint8 [H, W, 3] frame) of an ``encode_frame`` message."""
    index, prompt_id = HEADER.unpack_from(message)
    frame = np.asarray(Image.open(io.BytesIO(message[HEADER.size:])).convert("RGB"))
    return index, prompt_id, frame


class LiveSession:
    """One paced live stream of ``source`` (``frames(schedule, num_frames, seed)`` yielding uint8 chunks
    [n, H, W, 3] and ``sampling_settings()``; a ``sampling.stream.Streamer``) for any number of viewers.

    ``prompt``: the first prompt (``check_prompt``). ``fps``: frames released per second, in [1, MAX_FPS].
    ``record_path``: also keep the record in this file, rewritten whenever a switch has been streamed and at
    ``stop`` (atomically: a killed server leaves a record that replays what it streamed). ValueError names a bad
    argument. ``start`` the producer, ``stop`` it (idempotent)."""

    def __init__(self, source, prompt: str, *, fps: int = 8, seed: int = 0, record_path: Optional[str] = None):
        self.source = source
        self.fps = check_int(fps, "fps", 1, MAX_FPS, meaning="frames per second")
        self.seed = check_seed(seed)
        self.first_prompt = check_prompt(prompt)
        self.live = LivePrompt(self.first_prompt)
        self.sampling = source.sampling_settings()
        self.record_path = record_path
        self.broadcaster = Broadcaster()
        self.published = 0  # frames released to the viewers, 0..published-1
        self.prompt_id = 0  # of the last frame released
        self.requested = self.first_prompt  # the last prompt set
        self.late_frames = 0
        self.time_to_first_frame: Optional[float] = None  # seconds from start() to the stream's first frame
        self.error: Optional[str] = None  # why the stream ended, if it failed
        self._recorded: dict[int, str] = {}
        self._release_times: collections.deque = collections.deque(maxlen=2 * MAX_FPS)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._started_at = 0.0
        self._due: Optional[float] = None

    # --- control (any thread) ---

    def start(self) -> None:
        if self._thread is not None:
            return
        self._started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True, name="streamdit-live-session")
        self._thread.start()

    def stop(self) -> None:
        """Stops the producer (the Streamer's threads with it), closes every viewer, writes the final record."""
        self._stop.set()
        self.broadcaster.close()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_TIMEOUT_S)
        if self.record_path:
            self._write_record(self.record(), force=True)

    def set_prompt(self, prompt: str) -> dict:
        """Switches to ``prompt`` (``check_prompt``) from the next chunk the stream starts; returns the prompt and
        the frames released so far (the switch lands after them)."""
        prompt = check_prompt(prompt)
        with self._lock:
            self.live.set(prompt)
            self.requested = prompt
            return {"prompt": prompt, "after_frame": self.published}

    # --- what viewers and tools read ---

    def record(self) -> Optional[dict]:
        """The schedule record of the frames released so far ({seed, num_frames, prompts, sampling}; switches the
        stream has read but not yet released are left out), None before the first frame."""
        with self._lock:
            return self._record_of(self.published)

    def _record_of(self, n: int) -> Optional[dict]:
        if not n:
            return None
        prompts = {f: p for f, p in sorted(self.live.schedule().items()) if f < n or f == 0}
        return {"seed": self.seed, "num_frames": n, "prompts": prompts, "sampling": self.sampling}

    def record_line(self) -> Optional[str]:
        """``record()`` as a schedule file's JSONL line (checked by ``schedule_io``), None before the first frame."""
        record = self.record()
        return None if record is None else format_schedule_record(
            record["seed"], record["num_frames"], record["prompts"], record["sampling"])

    def state(self) -> dict:
        """What the page shows: the prompt of the last frame released (``prompt``, ``prompt_id``), the prompt set
        last when no released frame follows it yet (``pending``), the recent switches by id (``prompts``), frames
        released, the configured and measured frames/s, the time to first frame, the recent chunk latency of the
        denoising loop (p50 / p99 ms), late frames, viewers and their queues, and the error that ended the stream."""
        schedule = [p for _, p in sorted(self.live.schedule().items())]
        with self._lock:
            published, prompt_id, requested = self.published, self.prompt_id, self.requested
            times = list(self._release_times)
        prompt = schedule[prompt_id] if published and prompt_id < len(schedule) else self.first_prompt
        measured = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
        stats = getattr(self.source, "stats", None)
        latencies = np.asarray(list(getattr(stats, "chunk_seconds", []))[-_LATENCY_WINDOW:])
        viewers = self.broadcaster.viewers()
        recent = range(max(0, len(schedule) - _RECENT_PROMPTS), len(schedule))
        return {"fps": self.fps, "frames": published, "prompt_id": prompt_id, "prompt": prompt,
                "pending": None if requested == prompt else requested,
                "prompts": {i: schedule[i] for i in recent} or {0: self.first_prompt},
                "measured_fps": measured, "time_to_first_frame_s": self.time_to_first_frame,
                "chunk_ms_p50": 1e3 * float(np.median(latencies)) if latencies.size else None,
                "chunk_ms_p99": 1e3 * float(np.percentile(latencies, 99)) if latencies.size else None,
                "late_frames": self.late_frames, "viewers": len(viewers),
                "viewer_queues": [v.summary() for v in viewers], "error": self.error, "sampling": self.sampling}

    # --- the producer thread ---

    def _run(self) -> None:
        frames = None
        try:
            frames = self.source.frames(self.live, None, self.seed)
            for chunk in frames:
                if self.time_to_first_frame is None:
                    self.time_to_first_frame = time.perf_counter() - self._started_at
                self._trim_latencies()
                for frame in chunk:
                    if not self._wait_for_turn():
                        return
                    self._release(frame)
            self.error = "the stream ended"
        except Exception as e:  # pylint: disable=broad-except  # shown to viewers; the server keeps serving
            self.error = f"{type(e).__name__}: {e}"
            log.exception("live stream failed")
        finally:
            if frames is not None and hasattr(frames, "close"):
                frames.close()  # stops the Streamer's threads
            self.broadcaster.close()

    def _trim_latencies(self) -> None:
        stats = getattr(self.source, "stats", None)
        latencies = getattr(stats, "chunk_seconds", None)
        if isinstance(latencies, list) and len(latencies) > 2 * _LATENCY_WINDOW:
            del latencies[:-_LATENCY_WINDOW]

    def _wait_for_turn(self) -> bool:
        """Waits until the next frame is due (and someone watches); False once stopped."""
        if not self.broadcaster.viewers():
            while not self.broadcaster.wait_for_viewers(timeout=0.2):
                if self._stop.is_set():
                    return False
            self._due = None  # the clock restarts when someone watches again
        now = time.perf_counter()
        if self._due is None or now - self._due > 1.0 / self.fps:
            self.late_frames += self._due is not None
            self._due = now
        if self._stop.wait(max(0.0, self._due - now)):
            return False
        self._due += 1.0 / self.fps
        return True

    def _release(self, frame: np.ndarray) -> None:
        schedule = self.live.schedule()
        starts = sorted(schedule)
        index = self.published
        prompt_id = max(0, bisect.bisect_right(starts, index) - 1)
        message = encode_frame(index, prompt_id, frame)
        if self.record_path:  # first: the record holds every frame a viewer has
            self._write_record(self._record_of(index + 1))
        with self._lock:
            self.published = index + 1
            self.prompt_id = prompt_id
            self._release_times.append(time.perf_counter())
        self.broadcaster.publish(message)

    def _write_record(self, record: Optional[dict], force: bool = False) -> None:
        if record is None or (not force and record["prompts"] == self._recorded):
            return
        self._recorded = record["prompts"]
        write_schedule_record(self.record_path, record["seed"], record["num_frames"], record["prompts"],
                              record["sampling"])
