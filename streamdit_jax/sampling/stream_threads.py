"""The plumbing of a stream: background threads linked by bounded queues, and a pause of the garbage collector.

``_pump`` runs a generator on its own thread into a bounded queue (an error travels as an item), ``_drain`` reads
it back in order and re-raises such an error in the consumer; a shared ``threading.Event`` stops both when the
consumer goes away. ``GcPause`` keeps Python's cyclic collector out of a stream's chunks.
"""
from __future__ import annotations

import gc
import queue
import threading
from typing import Iterator

import numpy as np


class GcPause:
    """Keeps Python's cyclic garbage collector out of a stream's chunks (a real-time loop's usual policy).

    An automatic collection of the old generations takes milliseconds and lands on whichever chunk happens to
    allocate at that moment: on the tiny CPU model it is the largest part of the p99 / p50 chunk-latency tail
    (measured in WORKSPACE.md). Inside ``with GcPause() as pause`` automatic collection is off; calling ``pause.tick()``
    once per chunk runs a young-generation collection (gc.collect(1), cheap) every ``collect_every`` chunks, so cyclic
    garbage stays bounded over an endless stream. The previous gc state is restored on exit. Process-wide, hence
    opt-in (Streamer(pause_gc=True), experiments.benchmark_sampler --pause_gc).
    """

    def __init__(self, collect_every: int = 1000):
        if collect_every < 1:
            raise ValueError(f"collect_every must be >= 1 chunk, got {collect_every}")
        self.collect_every, self.chunks, self.collections = collect_every, 0, 0
        self._was_enabled = True

    def __enter__(self) -> "GcPause":
        self._was_enabled = gc.isenabled()
        gc.disable()
        return self

    def tick(self) -> None:
        self.chunks += 1
        if self.chunks % self.collect_every == 0:
            gc.collect(1)
            self.collections += 1

    def __exit__(self, *exc) -> None:
        if self._was_enabled:
            gc.enable()


class NoGcPause:
    """GcPause's interface doing nothing: the collector stays as the application set it."""

    def __enter__(self):
        return self

    def tick(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        pass


def _nothing() -> Iterator[np.ndarray]:
    """An empty stream (num_frames=0), still a generator like every other stream."""
    return
    yield


_DONE = object()
_JOIN_TIMEOUT_S = 5.0  # how long an abandoned stream waits for its threads before leaving them to finish


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Blocking put that gives up once ``stop`` is set (the consumer went away)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _pump(items, q: queue.Queue, stop: threading.Event) -> None:
    """Thread body: every item of ``items`` into ``q``, then the end marker; an error travels as an item."""
    try:
        for item in items:
            if not _put(q, item, stop):
                return
        _put(q, _DONE, stop)
    except BaseException as e:  # surfaced in the consumer
        _put(q, e, stop)


def _drain(q: queue.Queue, stop: threading.Event):
    """Items of ``q`` until the end marker; re-raises an error sent by the producing thread."""
    while not stop.is_set():
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
