"""Prompt schedules of a stream and the argument rules of a stream request.

A schedule is one prompt, a {frame index: prompt} mapping (``normalize_schedule``: sorted, starting at frame 0), or
a ``LivePrompt`` that takes switches from any thread while streaming and records them as a plain schedule that
replays the stream exactly. ``check_guidance``, ``check_int`` and ``check_seed`` are the library's rules for
stream arguments (ValueError naming the value and what is valid), shared by the Streamer, ``pretrained.load_streamer``
and the command lines.
"""
from __future__ import annotations

import math
import threading
from typing import Mapping, Optional, Union

import numpy as np

Schedule = Union[str, Mapping[int, str], "LivePrompt"]

MAX_GUIDANCE = 100.0  # classifier-free guidance scales in use are ~2-10; above this a value is a typo
MAX_SEED = 2 ** 32 - 1  # the noise key takes 32 bits of the seed: larger or negative seeds would repeat these streams


def show_value(value) -> str:
    """A value as a message names it: plain floats (nan, 3.5), ints, else repr."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return repr(value)


def check_guidance(value, name: str = "guidance_scale") -> Optional[float]:
    """A classifier-free guidance scale: None (no guidance) or a finite number in [1, MAX_GUIDANCE], 1 meaning no
    guidance; returned as a float. Scales below 1 are refused rather than read as "off" (they would mean
    extrapolating away from the prompt, which this sampler never does); ValueError names the value and the range."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not math.isfinite(value) or not 1.0 <= value <= MAX_GUIDANCE:
        raise ValueError(f"{name}={show_value(value)} must be a finite number in [1, {MAX_GUIDANCE:g}] (1: no "
                         f"classifier-free guidance)")
    return float(value)


def check_int(value, name: str, minimum: int = 0, maximum: Optional[int] = None, allow_none: bool = False,
              meaning: str = "") -> Optional[int]:
    """``value`` as an int when it is an integer (not a bool) in [minimum, maximum] (None too if ``allow_none``), else
    ValueError naming it and the valid range (``meaning`` appended in parentheses)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum or \
            (maximum is not None and value > maximum):
        valid = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"
        valid += " or None" if allow_none else ""
        raise ValueError(f"{name}={show_value(value)} must be {valid}" + (f" ({meaning})" if meaning else ""))
    return int(value)


def check_seed(value, name: str = "seed") -> int:
    return check_int(value, name, 0, MAX_SEED, meaning="the noise key uses 32 bits")


def normalize_schedule(schedule: Schedule) -> list[tuple[int, str]]:
    """A prompt or {frame: prompt} -> sorted [(frame, prompt)] starting at frame 0; errors name the bad entry."""
    if isinstance(schedule, str):
        schedule = {0: schedule}
    if not isinstance(schedule, Mapping):
        raise ValueError(f"a prompt schedule is a prompt string or a {{frame: prompt}} mapping (or a LivePrompt for "
                         f"Streamer), got {type(schedule).__name__}: {schedule!r:.80}")
    if not schedule:
        raise ValueError("the prompt schedule is empty; give at least {0: 'a prompt'}")
    items = []
    for frame, prompt in schedule.items():
        if not isinstance(frame, (int, np.integer)) or isinstance(frame, bool) or frame < 0:
            raise ValueError(f"schedule entry {frame!r}: frame indices must be integers >= 0")
        if not isinstance(prompt, str):
            raise ValueError(f"schedule entry {frame}: prompt must be a string, got {prompt!r}")
        items.append((int(frame), prompt))
    items.sort()
    if items[0][0] != 0:
        raise ValueError(f"the prompt schedule has no prompt at frame 0 (first entry at frame {items[0][0]})")
    return items


class LivePrompt:
    """A prompt that any thread may change while a Streamer streams it: the interactive half of Sec. 6.

    Pass it to ``Streamer.latents`` / ``Streamer.frames`` in place of a schedule. ``set(prompt)`` takes effect at the
    next macro step the stream starts. The chunks already denoised keep the old prompt: in ``Streamer.frames`` those
    waiting in its two queues and the two in flight, at most 2 x ``queue_size`` + 2 chunks, reach the viewer first;
    after them the buffer's own delay (a frame is denoised over the whole buffer, Sec. 5).
    The stream records every switch at the emitted-frame index where it took effect: ``schedule()`` is then an
    ordinary {frame: prompt} schedule that replays the same stream exactly (same seed and sampling settings), so a
    live session can be reproduced, scored by the evaluator, or forked.
    """

    def __init__(self, prompt: str):
        self._lock = threading.Lock()
        self._pending = self._check(prompt)
        self._applied: list[tuple[int, str]] = []

    @staticmethod
    def _check(prompt) -> str:
        if not isinstance(prompt, str):
            raise ValueError(f"a live prompt must be a string, got {prompt!r}")
        return prompt

    def set(self, prompt: str) -> None:
        """Switch to ``prompt`` from the next macro step on (thread-safe; the last call before that step wins)."""
        prompt = self._check(prompt)
        with self._lock:
            self._pending = prompt

    def at(self, frame: int) -> str:
        """The prompt for the macro step that emits from stream frame ``frame``; records it when it changed.

        Called by the Streamer in stream order. The first read for a frame fixes that frame's prompt (the stream
        start, its warm-up and the first emitted step all read frame 0), so a ``set`` lands at the next frame read
        and the recorded schedule replays exactly."""
        with self._lock:
            if self._applied:
                last_frame, last_prompt = self._applied[-1]
                if frame < last_frame:
                    raise ValueError(f"live prompt read for frame {frame} after frame {last_frame}: a stream reads "
                                     f"its frames in order")
                if frame == last_frame or self._pending == last_prompt:
                    return last_prompt
            self._applied.append((int(frame), self._pending))
            return self._pending

    def reset(self) -> None:
        """Forget the recorded switches (a new stream starts at frame 0 with the current prompt)."""
        with self._lock:
            self._applied = []

    def schedule(self) -> dict[int, str]:
        """{frame: prompt} of the switches applied so far: a schedule that replays the stream exactly."""
        with self._lock:
            return dict(self._applied)
