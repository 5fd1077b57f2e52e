"""An application's stream into a video file, and the pieces of an interactive one around a ``LivePrompt``.

``StreamOutput`` writes a stream's chunks to a progressive writer, each whole even on Ctrl-C (``WholeChunks``), and
counts them; live, it also paces them to real time (``Pacer``) and keeps the schedule record of what was streamed
(``ScheduleRecorder``, ``schedule_io``), rewritten at each switch so a killed session still leaves one that replays
it. ``start_reading`` takes the live prompts from lines of text (standard input) on a thread.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Callable, Iterable, Optional

from streamdit_jax.sampling.schedule_io import write_schedule_record
from streamdit_jax.sampling.schedules import LivePrompt
from streamdit_jax.sampling.video_io import VideoWriteError


def read_live_prompts(live: LivePrompt, lines: Iterable[str], say: Callable[[str], None]) -> None:
    """Every non-empty line becomes the live prompt (end of input keeps the last one); ``say`` shows each switch."""
    for line in lines:
        prompt = line.strip()
        if prompt:
            live.set(prompt)
            say(f"live: next prompt {prompt!r}")


def start_reading(live: LivePrompt, lines: Iterable[str], say: Callable[[str], None]) -> threading.Thread:
    """``read_live_prompts`` on a daemon thread: a stream that ends does not wait for more input."""
    thread = threading.Thread(target=read_live_prompts, args=(live, lines, say), daemon=True, name="streamdit-stdin")
    thread.start()
    return thread


class Pacer:
    """Real time at ``fps``: frame i is released i / fps seconds after the first, so what a viewer types follows the
    video. Counts the chunks paced and those more than a frame late (a viewer would have seen a stall)."""

    def __init__(self, fps: int):
        self.fps, self.first_frame_at, self.chunks, self.late = fps, None, 0, 0

    def wait(self, written: int) -> None:
        """Sleeps until the next chunk, the one starting at frame ``written``, is due."""
        self.first_frame_at = self.first_frame_at or time.perf_counter()
        wait = self.first_frame_at + written / self.fps - time.perf_counter()
        self.chunks += 1
        self.late += wait < -1.0 / self.fps
        time.sleep(max(0.0, wait))


class WholeChunks:
    """Ctrl-C inside ``with`` waits for its end, so a chunk is written whole and counted; elsewhere (waiting for
    frames, pacing) it interrupts at once, as usual. Installs its SIGINT handler when made (an application's
    choice: make it in the main thread)."""

    def __init__(self):
        self.inside, self.pending = False, False
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame):
        if not self.inside:
            raise KeyboardInterrupt
        self.pending = True

    def __enter__(self):
        self.inside = True

    def __exit__(self, exc_type, *exc):
        self.inside = False
        if self.pending and exc_type is None:
            raise KeyboardInterrupt


class ScheduleRecorder:
    """Keeps the schedule a ``LivePrompt`` stream has written so far in the record file ``path``
    (``schedule_io.write_schedule_record``, with the stream's ``seed`` and ``sampling`` settings)."""

    def __init__(self, path: str, live: LivePrompt, seed: int, sampling: dict):
        self.path, self.live, self.seed, self.sampling = path, live, seed, sampling
        self.recorded: dict[int, str] = {}

    def update(self, written: int) -> bool:
        """Rewrites the record when the prompt switched since the last write, ``written`` frames being out; True at
        the first write (the stream's first frames are out)."""
        # only the switches already written out: one the denoising thread has read ahead counts once its frames are
        # out (comparing the whole schedule would never rewrite the record for it before close)
        schedule = {f: p for f, p in self.live.schedule().items() if f < written or f == 0}
        if schedule == self.recorded:
            return False
        first, self.recorded = not self.recorded, schedule
        write_schedule_record(self.path, self.seed, written, schedule, self.sampling)
        return first

    def close(self, written: int) -> None:
        """The final record, of the ``written`` frames the stream's output holds."""
        write_schedule_record(self.path, self.seed, written, self.live.schedule(), self.sampling)


class StreamOutput:
    """A stream's chunks into ``writer`` (a ``video_io.ProgressiveWriter``): each paced (``pacer``, if any), written
    whole even on Ctrl-C and counted in ``written``, then the live record updated (``recorder``, if any).
    ``write_all`` ends at the stream's end, at Ctrl-C or at a failed write (kept in ``error``); ``close`` finalises
    the file and the record, also after a stream that failed. Make it in the main thread (``WholeChunks``)."""

    def __init__(self, writer, pacer: Optional[Pacer] = None, recorder: Optional[ScheduleRecorder] = None):
        self.writer, self.pacer, self.recorder = writer, pacer, recorder
        self.written, self.error = 0, None
        self._whole_chunks = WholeChunks()

    def write_all(self, chunks: Iterable, on_chunk: Optional[Callable] = None,
                  on_recording: Optional[Callable[[], None]] = None) -> None:
        """Writes ``chunks`` (uint8 [n, H, W, 3] each); ``on_chunk(frames)`` after each is written, ``on_recording()``
        when the record is first written (the stream's first frames are out)."""
        try:
            for frames in chunks:
                if self.pacer is not None:
                    self.pacer.wait(self.written)
                with self._whole_chunks:
                    self.writer.write(frames)
                    self.written += len(frames)
                if on_chunk is not None:
                    on_chunk(frames)
                if self.recorder is not None and self.recorder.update(self.written) and on_recording is not None:
                    on_recording()
        except KeyboardInterrupt:
            pass
        except VideoWriteError as e:  # ffmpeg went away mid-stream
            self.error = e

    def close(self) -> int:
        """The frames the finalised file holds, read back (0 when it could not be finalised: ``error`` says why);
        writes the final record when any frame was written."""
        in_file = 0
        try:
            in_file = self.writer.close()
        except VideoWriteError as e:
            self.error = self.error or e
        if self.recorder is not None and self.written:
            self.recorder.close(self.written)
        return in_file
