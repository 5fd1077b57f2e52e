"""One producer, many viewers: a fan-out of items through a small bounded queue per viewer.

The producer (one thread generating frames) calls ``Broadcaster.publish(item)``: it appends the item to every
viewer's queue and returns at once. It never waits for a viewer: a viewer whose queue is full (it reads slower than
the producer publishes) loses its OLDEST queued item, counted in ``Viewer.dropped``, so a slow viewer sees the
newest frames with gaps rather than an ever older backlog, and no queue grows past its ``maxsize``. A viewer reads
with ``pop()`` (non-blocking) and is told that items arrived through its ``wake`` callback, called from the
producer's thread at most once between two reads that found the queue empty, so an event loop's ``wake`` (a
``call_soon_threadsafe``) never piles up callbacks either. ``wait_for_viewers`` lets the producer idle while nobody
watches.
"""
from __future__ import annotations

import collections
import threading
from typing import Callable, Optional


class Viewer:
    """A viewer's bounded queue (drop-oldest when full) with its counters; made by ``Broadcaster.subscribe``."""

    def __init__(self, maxsize: int, wake: Optional[Callable[[], None]] = None):
        if not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize={maxsize!r} must be an int >= 1 (items a viewer's queue holds)")
        self.maxsize, self._wake = maxsize, wake
        self._items: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._signalled = False  # a wake is due or delivered and the reader has not yet found the queue empty
        self.closed = False
        self.received = 0  # items offered to this viewer
        self.dropped = 0  # of those, discarded unread because the queue was full
        self.max_depth = 0  # the deepest the queue has been

    def offer(self, item) -> None:
        """Queues ``item`` (the producer's side; never blocks): drops the oldest queued item when full."""
        with self._lock:
            if self.closed:
                return
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.received += 1
            self.max_depth = max(self.max_depth, len(self._items))
            wake, self._signalled = not self._signalled, True
        if wake and self._wake is not None:
            self._wake()

    def pop(self):
        """The oldest queued item, or None when the queue is empty (then the next ``offer`` calls ``wake``)."""
        with self._lock:
            if self._items:
                return self._items.popleft()
            self._signalled = False
            return None

    def depth(self) -> int:
        """Items queued now."""
        with self._lock:
            return len(self._items)

    def close(self) -> None:
        """No more items: the queue is emptied and ``wake`` called, so a waiting reader sees ``closed``."""
        with self._lock:
            self.closed = True
            self._items.clear()
        if self._wake is not None:
            self._wake()

    def summary(self) -> dict:
        return {"depth": self.depth(), "max_depth": self.max_depth, "maxsize": self.maxsize,
                "received": self.received, "dropped": self.dropped}


class Broadcaster:
    """Fans each published item out to the subscribed viewers (thread-safe; ``publish`` never blocks)."""

    def __init__(self):
        self._viewers: list[Viewer] = []
        self._lock = threading.Lock()
        self._has_viewers = threading.Condition(self._lock)
        self.published = 0

    def subscribe(self, maxsize: int = 4, wake: Optional[Callable[[], None]] = None) -> Viewer:
        """A new viewer receiving every item published from now on; ``wake`` as in ``Viewer``."""
        viewer = Viewer(maxsize, wake)
        with self._lock:
            self._viewers.append(viewer)
            self._has_viewers.notify_all()
        return viewer

    def unsubscribe(self, viewer: Viewer) -> None:
        """Stops and forgets ``viewer`` (a second call does nothing)."""
        with self._lock:
            if viewer in self._viewers:
                self._viewers.remove(viewer)
        viewer.close()

    def viewers(self) -> list[Viewer]:
        with self._lock:
            return list(self._viewers)

    def publish(self, item) -> int:
        """Offers ``item`` to every current viewer; returns how many there were."""
        with self._lock:
            viewers = list(self._viewers)
            self.published += 1
        for viewer in viewers:
            viewer.offer(item)
        return len(viewers)

    def wait_for_viewers(self, timeout: Optional[float] = None) -> bool:
        """Blocks until at least one viewer is subscribed (True) or ``timeout`` seconds passed (False)."""
        with self._lock:
            return self._has_viewers.wait_for(lambda: bool(self._viewers), timeout)

    def close(self) -> None:
        """Unsubscribes every viewer (each is closed)."""
        with self._lock:
            viewers, self._viewers = self._viewers, []
        for viewer in viewers:
            viewer.close()
