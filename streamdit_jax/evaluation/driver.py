"""Evaluating a checkpoint: stream prompt schedules with it and score the generated frames alone.

``evaluate_checkpoint(checkpoint, schedules)`` loads a Streamer (``sampling.pretrained.load_streamer``) and runs
``evaluate_streamer``, which streams every schedule with that one sampler and pools the evaluator's scores
(``evaluate_many``): present, colour, shape, direction, switch_lag_frames, drift_points, settled_drift_points, the
per-window details, plus frames_per_second and sampling (the settings used). ``write_result`` writes that dict as
JSON. Schedules are dicts of seed, num_frames and prompts (``schedule_io.read_schedules`` reads them from a file;
default: ``schedule.default_schedules()``).
"""
from __future__ import annotations

import json
import time
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from streamdit_jax.evaluation.schedule import default_schedules
from streamdit_jax.evaluation.shapes_metrics import evaluate_many
from streamdit_jax.fileio import write_text_atomic
from streamdit_jax.sampling.pretrained import load_streamer
from streamdit_jax.sampling.schedule_io import check_schedule_record, sampling_choices, scored_schedule
from streamdit_jax.sampling.schedules import check_int


def evaluate_streamer(streamer, schedules: Sequence[Mapping], window: int = 64,
                      log: Optional[Callable[[str], None]] = None) -> dict:
    """Streams each schedule ({seed, num_frames, prompts}, optionally targets) with ``streamer`` and scores the frames
    in ``window``-frame windows against the targets, else the prompts: ``evaluate_many``'s dict plus frames_per_second (after the first stream, which includes compilation; nan
    for a single schedule) and sampling (``streamer.sampling_settings()``). Every schedule is checked before anything
    is streamed (ValueError naming the bad one); ``log`` gets a line per stream."""
    check_int(window, "window", 1, meaning="frames per window of the drift metrics")
    if not schedules:
        raise ValueError("no schedules to evaluate")
    for i, item in enumerate(schedules):
        try:
            check_schedule_record(item)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"schedule {i + 1} is malformed ({e})") from None
    videos, frames_total, seconds = [], 0, 0.0
    for i, item in enumerate(schedules):
        t = time.perf_counter()
        frames = np.concatenate(list(streamer.frames(item["prompts"], item["num_frames"], item["seed"])))
        seconds += time.perf_counter() - t if i else 0.0  # the first stream includes compilation
        frames_total += len(frames) if i else 0
        videos.append((frames, scored_schedule(item)))
        if log is not None:
            log(f"schedule {i + 1}/{len(schedules)}: {len(frames)} frames")
    result = evaluate_many(videos, window=window)
    result["frames_per_second"] = frames_total / seconds if seconds else float("nan")
    result["sampling"] = streamer.sampling_settings()
    return result


def evaluate_checkpoint(checkpoint: str, schedules: Optional[Sequence[Mapping]] = None, *,
                        chunk: Optional[int] = None, steps_per_chunk: Optional[int] = None,
                        guidance: Optional[float] = None, reference_frames: Optional[int] = None,
                        warmup_frames: Optional[int] = None, window: int = 64, pause_gc: bool = False,
                        log: Optional[Callable[[str], None]] = None, text_encoder: Optional[str] = None) -> dict:
    """``evaluate_streamer`` with a Streamer of ``checkpoint``: what ``experiments.evaluate`` writes to its JSON.

    The sampling arguments given (not None) win; the others come from the schedules' recorded "sampling" block (the
    same on every schedule, ``schedule_io.sampling_choices``), else the checkpoint's defaults (``load_streamer``:
    ``warmup_frames`` None warms up one buffer). ``schedules`` None: ``default_schedules()``. ``pause_gc``: the
    Streamer's GcPause (an application's choice). ValueError (CheckpointError for the checkpoint) names the bad
    value; ``log`` also gets the notes of ``sampling_choices``. ``text_encoder``: see ``load_streamer``."""
    schedules = default_schedules() if schedules is None else schedules
    if not schedules:
        raise ValueError("no schedules to evaluate")
    given = {k: v for k, v in dict(chunk=chunk, steps_per_chunk=steps_per_chunk, guidance=guidance,
                                   reference_frames=reference_frames, warmup_frames=warmup_frames).items()
             if v is not None}
    choices, notes = sampling_choices(schedules, given)
    for note in notes:
        if log is not None:
            log(note)
    _, streamer = load_streamer(checkpoint, pause_gc=pause_gc, text_encoder=text_encoder, **choices)
    return evaluate_streamer(streamer, schedules, window, log)


def write_result(path: str, result: dict) -> None:
    """``result`` as indented JSON (numpy scalars as floats), replaced atomically."""
    write_text_atomic(path, json.dumps(result, indent=1, default=float))
