"""Profiler traces of chosen steps of a loop (training, distillation, streaming) with ``jax.profiler``.

``--profile_steps=A:B`` (``parse_profile_steps``) selects the loop's steps A..B-1; a ``ProfileWindow`` starts
``jax.profiler.start_trace(log_dir)`` before step A is dispatched and stops it once step B-1 has finished on the
device. The trace lands in ``LOG_DIR/plugins/profile/<run>/`` as ``*.xplane.pb`` (TensorBoard's profile plugin, XProf)
and ``*.trace.json.gz`` (the timeline as Chrome trace JSON: Perfetto). ``annotate`` marks each step with
``jax.profiler.StepTraceAnnotation``, which the profile tools use to split the timeline into steps.

A loop drives a window as

    for step in ...:
        window.before_step(step)
        with window.annotate(step, "train"):
            result = run_step(...)
        window.after_step(step, result)
    ...
    window.close()  # in a ``finally``: a run that ends inside the window still writes its trace

A window without steps (``ProfileWindow(None)``) does nothing at any step.
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
from typing import Any, Optional

import jax

log = logging.getLogger(__name__)

_STEPS = re.compile(r"\s*(\d+)\s*:\s*(\d+)\s*")


def parse_profile_steps(text: Optional[str], name: str = "--profile_steps") -> Optional[tuple[int, int]]:
    """``"A:B"`` -> (A, B), the steps A..B-1 to trace; ``""`` (or None) -> None, no tracing. Anything else raises
    ValueError naming the value (``name`` is the flag's name in the message) and the valid form."""
    if text is None or not text.strip():
        return None
    m = _STEPS.fullmatch(text)
    if m is None or not int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"{name}={text!r} must be START:STOP with integers 0 <= START < STOP (steps START..STOP-1 "
                         f"are traced)")
    return int(m.group(1)), int(m.group(2))


class ProfileWindow:
    """Traces the steps ``steps = (A, B)`` (A..B-1) of one loop into ``log_dir``; ``steps`` None: never traces.

    The trace starts at the first step in [A, B) the loop reaches (A itself, unless the loop started later, e.g. a
    resumed training run) and stops after step B-1 or at ``close()``, whichever comes first. Only one trace per
    window: steps seen again after it stopped are not traced. The methods may be called from any thread (a
    streamer steps on its own thread while the caller closes the window).
    """

    def __init__(self, steps: Optional[tuple[int, int]], log_dir: Optional[str] = None):
        if steps is not None:
            start, stop = steps
            if not 0 <= start < stop:
                raise ValueError(f"profile steps {steps!r} must be (START, STOP) with 0 <= START < STOP")
            if not log_dir:
                raise ValueError("a profile window with steps needs a log_dir")
        self.steps, self.log_dir = steps, log_dir
        self.running = False  # a trace of this window is being recorded
        self.done = False  # the window's trace was written (or the window was closed): none is started again
        self.written = False  # a trace of this window is in log_dir
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.steps is not None

    def before_step(self, step: int) -> None:
        """Call before dispatching ``step``: starts the trace at the window's first step."""
        if self.steps is None or self.done or self.running:
            return
        start, stop = self.steps
        if not start <= step < stop:
            return
        with self._lock:
            if self.done or self.running:
                return
            log.info("profiling steps %d..%d into %s", step, stop - 1, self.log_dir)
            jax.profiler.start_trace(self.log_dir)
            self.running = True

    def after_step(self, step: int, result: Any = None) -> None:
        """Call after dispatching ``step`` with its outputs: at the window's last step, waits for ``result`` (the
        step's device work, otherwise still queued when the trace stops) and writes the trace."""
        if not self.running or step < self.steps[1] - 1:
            return
        jax.block_until_ready(result)
        self._stop()

    def annotate(self, step: int, name: str):
        """A context manager marking ``step`` in the trace (``jax.profiler.StepTraceAnnotation``); a no-op one
        when the window has no steps."""
        if self.steps is None:
            return contextlib.nullcontext()
        return jax.profiler.StepTraceAnnotation(name, step_num=step)

    def close(self) -> None:
        """Writes a trace still being recorded (the loop ended inside the window) and ends the window; idempotent.
        A trace that cannot be written is logged, not raised: ``close`` runs in the loops' ``finally`` blocks, where
        an error would hide the run's own outcome."""
        if self.steps is None:
            return
        try:
            self._stop()
        except Exception as e:  # noqa: BLE001 -- see the docstring
            log.warning("the profile trace could not be written to %s: %s: %s", self.log_dir, type(e).__name__, e)

    def _stop(self) -> None:
        with self._lock:
            self.done = True
            if not self.running:
                return
            self.running = False
            jax.profiler.stop_trace()
            self.written = True
            log.info("wrote the profile trace to %s", self.log_dir)
