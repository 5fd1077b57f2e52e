"""Score generated shapes-world streams from their frames alone, against the prompt active at each frame.

StreamDiT's claims are about following a prompt schedule over long streams (Sec. 6): does each frame show what its
prompt asks for, how quickly does the stream obey a new prompt, does quality drift over minutes. In the shapes world
the answer can be read off the pixels: objects are flat-coloured blobs (`blobs`), so for each object the prompt
names we check

* present: a blob of the prompt's colour with a plausible size (>= 30% of the smallest shape's area, floor 4 px;
  <= 4x the square's area), in a frame that is not clutter: one whose object-coloured pixels (all blobs and specks)
  exceed 3 squares' area per prompt object has nothing present (uniform or blocky colour noise has ~25% of its
  pixels near some object colour, a rendered frame ~5%);
* colour: the prompt's colour is present and fewer than #objects blobs of other colours (of at least the
  plausible minimum size) are as large, i.e. for one object the dominant blob (strictly) has the prompt's colour;
* shape: the best-matching template of the object's blob (`shape_classifier`) is the prompt's shape;
* direction: the blob's wrap-aware centroid steps point the prompt's way. A step t -> t+1 shows frame t's motion
  (the world moves objects after drawing them); frame t's direction is the per-axis median of the steps of frames
  t-2..t+2 that lie in t's prompt segment (steps of another prompt would outvote short segments; a frame with no
  valid step in its segment borrows its neighbours'). A step counts only between two frames that both hold a
  plausible blob of that colour, and only if it is shorter than one object size. A frame with no valid step, or
  whose median step is shorter than 0.3 px, has NO direction and counts as wrong (it stays in the denominator), so
  noise and frozen videos cannot score by luck.

Which blob is "the object": the largest blob of the prompt's colour. For one-object prompts, when that colour is
absent we fall back to the dominant plausible blob, so shape and direction are judged on what the model drew even if
it got the colour wrong (the metrics stay separate: a blue square asked as red scores shape but not colour).
With two objects, colour is what tells them apart, so an absent colour fails all four metrics for that object.
A frame's score is the mean over its prompt's objects.

Temporal consistency: size jitter = mean |area(t+1) - area(t)| and position jitter = mean |step(t) - step(t-1)|
(the centroid's deviation from a constant-velocity track, wrap-aware), both in pixels, over steps inside one prompt
segment (an intended shape or motion change is not jitter). Both are 0 on rendered videos.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from streamdit_jax import shapes_world as shapes
from streamdit_jax.evaluation import blobs as blobs_lib
from streamdit_jax.evaluation import schedule as schedule_lib
from streamdit_jax.evaluation import shape_classifier

METRICS = ("present", "colour", "shape", "direction")
NO_MOTION = -1


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Tolerances of the evaluator (defaults tuned for shapes-world frames from 16 to 64 pixels).

    colour_threshold: max RGB distance of a pixel to its colour (see `blobs.classify_pixels`).
    min_area_fraction / min_area_pixels: a blob is plausible from max(pixels, fraction x smallest shape's area).
    max_area_factor: ... up to this many times the square's area (a smear over the frame is not an object).
    max_foreground_factor: a frame with more object-coloured pixels than this many squares per prompt object is
      clutter (random colours, smears): nothing in it is present.
    min_iou: a blob's best template IoU must reach this for it to have a shape.
    direction_half_window: steps t-h..t+h (of frames under t's prompt) vote (per-axis median) for frame t's motion.
    min_speed: median steps shorter than this (pixels per frame) are "not moving".
    max_step_factor: steps longer than this x object_size are a different blob, not motion.
    hold_frames: a prompt switch is obeyed once the new attribute holds this many consecutive frames.
    """

    colour_threshold: float = 100.0
    min_area_fraction: float = 0.3
    min_area_pixels: int = 4
    max_area_factor: float = 4.0
    max_foreground_factor: float = 3.0
    min_iou: float = 0.5
    direction_half_window: int = 2
    min_speed: float = 0.3
    max_step_factor: float = 1.0
    hold_frames: int = 4


class FrameScores(NamedTuple):
    """Per-frame results of `score_frames`.

    present, colour, shape, direction: float [T], each the fraction of the frame's prompt objects that pass.
    correct: bool [T, K, 4] per object and metric (METRICS order); objects beyond num_objects[t] are False.
    num_objects: int [T] objects named by each frame's prompt.
    blob_colour: int [T, K] colour index of the blob judged as each object (-1: none).
    area: int [T, K] its area in pixels (0: none); centroid: float [T, K, 2] its (y, x) (NaN: none).
    pred_shape, pred_motion: int [T, K] what was seen (-1: undefined); indices into shapes.SHAPES / MOTIONS.
    size_jitter, position_jitter: the samples (pixels) behind the jitter means.
    captions: the expanded schedule.
    """

    present: np.ndarray
    colour: np.ndarray
    shape: np.ndarray
    direction: np.ndarray
    correct: np.ndarray
    num_objects: np.ndarray
    blob_colour: np.ndarray
    area: np.ndarray
    centroid: np.ndarray
    pred_shape: np.ndarray
    pred_motion: np.ndarray
    size_jitter: np.ndarray
    position_jitter: np.ndarray
    captions: list


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [T >= 1, H, W, 3], got shape {frames.shape}")
    if frames.shape[1] != frames.shape[2]:
        raise ValueError(f"frames must be square (H == W), got {frames.shape[1]}x{frames.shape[2]}")
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 RGB in [0, 255], got dtype {frames.dtype}")
    return frames


def _shape_areas(half: int) -> np.ndarray:
    grid = np.arange(-half, half + 1)
    oy, ox = np.meshgrid(grid, grid, indexing="ij")
    return np.array([shapes.shape_mask(s, ox, oy, half).sum() for s in range(len(shapes.SHAPES))])


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index] for per-component arrays, any value where index is -1 (callers mask those), also if empty."""
    if len(values) == 0:
        return np.zeros(index.shape + values.shape[1:], values.dtype)
    return values[np.maximum(index, 0)]


def _classify_motion(step: np.ndarray, min_speed: float) -> np.ndarray:
    """Motion index of median steps (..., 2) = (dy, dx); NO_MOTION where NaN or slower than min_speed."""
    dy, dx = step[..., 0], step[..., 1]
    horizontal = np.abs(dx) >= np.abs(dy)
    motion = np.where(horizontal, np.where(dx > 0, shapes.MOTIONS.index("right"), shapes.MOTIONS.index("left")),
                      np.where(dy > 0, shapes.MOTIONS.index("down"), shapes.MOTIONS.index("up")))
    moving = np.nan_to_num(np.maximum(np.abs(dx), np.abs(dy)), nan=0.0) >= min_speed
    return np.where(moving, motion, NO_MOTION).astype(np.int32)


def _judge_colours(area_tc: np.ndarray, prompts: schedule_lib.PromptTable, clear: np.ndarray, min_area: int,
                   max_area: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(present, colour_ok, blob_colour) per [T, K] prompt object from the largest blob area per (frame, colour)."""
    t_idx = np.arange(len(area_tc))[:, None]
    valid = np.arange(prompts.colour.shape[1])[None] < prompts.num_objects[:, None]
    plausible = (area_tc >= min_area) & (area_tc <= max_area)
    want = np.maximum(prompts.colour, 0)
    present = valid & plausible[t_idx, want] & clear[:, None]
    # colour: fewer than #objects blobs of other colours are at least as large (ties are not dominance)
    others = (area_tc >= min_area)[:, None, :] & (np.arange(blobs_lib.NUM_COLOURS)[None] != want[:, :, None])
    as_large = (others & (area_tc[:, None, :] >= area_tc[t_idx, want][:, :, None])).sum(-1)
    colour_ok = present & (as_large < prompts.num_objects[:, None])
    # the blob judged as each object: its colour's, else (one-object prompts) the dominant plausible blob
    dominant = np.where(plausible, area_tc, -1).argmax(1)
    fallback = np.where((prompts.num_objects == 1) & plausible.any(1) & clear, dominant, -1)[:, None]
    blob_colour = np.where(present, prompts.colour, np.where(valid, fallback, -1)).astype(np.int32)
    return present, colour_ok, blob_colour


def _motions(step: np.ndarray, blob_colour: np.ndarray, prompt_id: np.ndarray, th: Thresholds) -> np.ndarray:
    """int [T, K]: motion index seen for each judged blob (NO_MOTION: undefined), from the per-colour steps
    step [T, 7, 2] (NaN: no valid step), by the segment-restricted median vote of the module docstring."""
    t_len = len(step)
    offsets = np.arange(-th.direction_half_window, th.direction_half_window + 1)
    rows = np.arange(t_len)[:, None] + offsets[None]  # [T, W]
    clipped = np.clip(rows, 0, t_len - 1)
    in_range = (rows >= 0) & (rows < t_len)
    segment = np.concatenate([[0], np.cumsum(prompt_id[1:] != prompt_id[:-1])])
    same_segment = in_range & (segment[clipped] == segment[:, None])
    votes = step[clipped[:, None, :], np.maximum(blob_colour, 0)[:, :, None]]  # [T, K, W, 2]
    all_votes = np.where(in_range[:, None, :, None], votes, np.nan)
    own_votes = np.where(same_segment[:, None, :, None], votes, np.nan)
    has_own = (~np.isnan(own_votes[..., 0])).any(-1)  # else borrow the neighbouring segments' steps
    votes = np.where(has_own[:, :, None, None], own_votes, all_votes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: no direction
        median_step = np.nanmedian(votes, axis=2)
    return np.where(blob_colour >= 0, _classify_motion(median_step, th.min_speed), NO_MOTION).astype(np.int32)


def score_frames(frames, schedule: schedule_lib.Schedule, config: shapes.ShapesWorldConfig | None = None,
                 thresholds: Thresholds = Thresholds()) -> FrameScores:
    """Per-frame prompt-following scores of a video.

    frames: uint8 [T, H, H, 3]. schedule: per-frame captions or {frame: caption} (see `expand_schedule`).
    config: the shapes world the prompts refer to (object size, background); default ShapesWorldConfig(frame_size=H).
    """
    frames = _check_frames(frames)
    t_len, size = frames.shape[0], frames.shape[1]
    config = config or shapes.ShapesWorldConfig(frame_size=size)
    if config.frame_size != size:
        raise ValueError(f"frames are {size}x{size} but config.frame_size is {config.frame_size}")
    th = thresholds
    captions = schedule_lib.expand_schedule(schedule, t_len)
    prompts = schedule_lib.prompt_table(captions)
    half = (config.object_size - 1) // 2
    areas = _shape_areas(half)
    min_area = max(th.min_area_pixels, math.ceil(th.min_area_fraction * areas.min()))
    max_area = th.max_area_factor * areas.max()

    pixels = blobs_lib.classify_pixels(frames, config.background, th.colour_threshold)
    found = blobs_lib.find_blobs(pixels.strict)
    area_tc = found.largest_area  # [T, 7]
    clear = (pixels.strict > 0).sum((1, 2)) <= th.max_foreground_factor * areas.max() * prompts.num_objects
    present, colour_ok, blob_colour = _judge_colours(area_tc, prompts, clear, min_area, max_area)
    has_blob = blob_colour >= 0
    t_idx = np.arange(t_len)[:, None]
    bc = np.maximum(blob_colour, 0)
    comp = np.where(has_blob, found.largest[t_idx, bc], -1)

    tt, jj = np.nonzero(has_blob)
    pred_shape = np.full(has_blob.shape, -1, np.int32)
    pred_shape[tt, jj], _ = shape_classifier.classify_shapes(
        found.comp_map, pixels.nearest, tt, comp[tt, jj], blob_colour[tt, jj], found.centroid[comp[tt, jj]],
        found.area[comp[tt, jj]], half, th.min_iou)

    # Per-colour tracks: step[t, c] from frame t to t + 1 of colour c's largest blob; NaN unless both frames hold a
    # plausible one and it moved less than max_step.
    plausible = (area_tc >= min_area) & (area_tc <= max_area)
    cent = np.where(plausible[..., None], _take(found.centroid, found.largest), np.nan)  # [T, 7, 2]
    step = np.full((t_len, blobs_lib.NUM_COLOURS, 2), np.nan)
    step[:-1] = blobs_lib.displacement(cent[:-1], cent[1:], size)
    step[np.abs(step).max(-1) > th.max_step_factor * config.object_size] = np.nan
    pred_motion = _motions(step, blob_colour, prompts.prompt_id, th)

    correct = np.stack([present, colour_ok, has_blob & (pred_shape == prompts.shape),
                        has_blob & (pred_motion == prompts.motion)], -1)
    per_frame = correct.sum(1) / prompts.num_objects[:, None]

    # Jitter along each object's blob, between frames of one prompt segment.
    pid = prompts.prompt_id
    obj_step = step[t_idx, bc]  # [T, K, 2]
    ok_step = has_blob[:-1] & (blob_colour[:-1] == blob_colour[1:]) & (pid[:-1] == pid[1:])[:, None] \
        & ~np.isnan(obj_step[:-1, :, 0])
    obj_area = np.where(has_blob, area_tc[t_idx, bc], 0)
    size_jitter = np.abs(obj_area[1:] - obj_area[:-1])[ok_step].astype(np.float64)
    position_jitter = np.linalg.norm(obj_step[1:-1] - obj_step[:-2], axis=-1)[ok_step[:-1] & ok_step[1:]]

    centroid = np.where(has_blob[..., None], _take(found.centroid, comp), np.nan)
    return FrameScores(*(per_frame[:, i] for i in range(4)), correct, prompts.num_objects, blob_colour, obj_area,
                       centroid, pred_shape, pred_motion, size_jitter, position_jitter, captions)


def switch_lags(scores: FrameScores, hold_frames: int = 4) -> list[dict]:
    """For every prompt switch that changes an attribute: frames until the new attribute(s) hold.

    The lag of a switch at frame f is the smallest L such that every changed (object, attribute) is correct on
    frames f+L .. f+L+hold-1 (hold = min(hold_frames, segment length)); it is capped at the segment length (the
    distance to the next switch or the end) when that never happens (`capped`: True).
    """
    captions, t_len = scores.captions, len(scores.captions)
    found = schedule_lib.switches(captions)
    bounds = [s.frame for s in found] + [t_len]
    out = []
    for sw, stop in zip(found, bounds[1:]):
        if not sw.changes:
            continue
        metric = [METRICS.index(schedule_lib.ATTRIBUTE_METRIC[a]) for _, a in sw.changes]
        ok = scores.correct[sw.frame:stop, [j for j, _ in sw.changes], metric].all(-1)
        seg = stop - sw.frame
        run = min(hold_frames, seg)
        sums = np.convolve(ok.astype(np.int32), np.ones(run, np.int32), mode="valid")  # [seg - run + 1]
        hits = np.flatnonzero(sums == run)
        lag = int(hits[0]) if len(hits) else seg
        out.append({"frame": sw.frame, "changes": [f"object{j}.{a}" for j, a in sw.changes],
                    "lag": lag, "capped": not len(hits)})
    return out


def _windows(per_metric: dict[str, np.ndarray], window: int, settled: np.ndarray) -> list[dict]:
    """Per-window accuracies over all frames, and over the settled frames only (``settled``: bool [T])."""
    t_len = len(settled)
    out = []
    for s in range(0, t_len, window):
        e = min(s + window, t_len)
        keep = settled[s:e]
        out.append({"start": s, "end": e, "frames": e - s, **{m: float(v[s:e].mean()) for m, v in per_metric.items()},
                    "settled_frames": int(keep.sum()),
                    "settled": {m: float(v[s:e][keep].mean()) if keep.any() else None
                                for m, v in per_metric.items()}})
    return out


def _drift(windows: list[dict], window: int) -> dict[str, float]:
    """Last window minus first, in percentage points; a last window shorter than half a window is too noisy to
    compare, so the one before it is used."""
    last = windows[-1]
    if len(windows) > 1 and last["frames"] < window / 2:
        last = windows[-2]
    return {m: 100.0 * (last[m] - windows[0][m]) for m in METRICS}


def _settled_drift(windows: list[dict], window: int) -> dict[str, float | None]:
    """Drift on settled frames: the last window with at least half a window of settled frames minus the first
    window's settled accuracy, in percentage points (None when no two such windows exist).

    Plain drift compares a first window that holds no switch with later windows that do, so the frames a stream
    spends obeying a switch read as drift; here they are left out, and what remains is the quality of the frames
    that show a settled prompt."""
    full = [w for w in windows if w["settled_frames"] >= window / 2]
    if len(full) < 2 or full[0] is not windows[0]:
        return {m: None for m in METRICS}
    return {m: 100.0 * (full[-1]["settled"][m] - full[0]["settled"][m]) for m in METRICS}


def settled_frames(lags: Sequence[dict], num_frames: int) -> np.ndarray:
    """bool [T]: False on the frames a stream spent switching (frames f .. f + lag - 1 of every switch it obeyed).

    A switch never obeyed (``capped``) keeps its frames: they are failures, not transition."""
    settled = np.ones(num_frames, bool)
    for s in lags:
        if not s["capped"]:
            settled[s["frame"]:s["frame"] + s["lag"]] = False
    return settled


def _mean_or_none(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def evaluate_stream(frames, schedule: schedule_lib.Schedule, window: int = 64,
                    config: shapes.ShapesWorldConfig | None = None, thresholds: Thresholds = Thresholds()) -> dict:
    """Aggregate scores of one stream (JSON-serialisable; None where undefined).

    Keys: frames; present, colour, shape, direction (accuracy over all frames, in [0, 1]); windows (the same per
    `window` frames, with start/end/frames, and over its settled frames: settled, settled_frames); drift_points
    (per metric: last window - first window, percentage points); settled_drift_points (the same on the frames not
    spent obeying a switch, see `settled_frames`: what is left is drift, not switch lag); switch_lag_frames (mean
    over switches, None without switches), switch_lags (raw list, see `switch_lags`), num_switches; size_jitter, position_jitter (mean absolute, pixels; None without samples) and
    their sample counts.
    """
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    scores = score_frames(frames, schedule, config, thresholds)
    per_metric = {m: getattr(scores, m) for m in METRICS}
    lags = switch_lags(scores, thresholds.hold_frames)
    windows = _windows(per_metric, window, settled_frames(lags, len(scores.captions)))
    return {
        "frames": len(scores.captions),
        **{m: float(v.mean()) for m, v in per_metric.items()},
        **_switches_and_windows(lags, windows, window),
        "size_jitter": _mean_or_none(scores.size_jitter),
        "size_jitter_samples": int(len(scores.size_jitter)),
        "position_jitter": _mean_or_none(scores.position_jitter),
        "position_jitter_samples": int(len(scores.position_jitter)),
    }


def _switches_and_windows(lags: list, windows: list, window: int) -> dict:
    """The switch-lag, drift and per-window entries of a result (one video's, or pooled over videos)."""
    return {"switch_lag_frames": _mean_or_none([s["lag"] for s in lags]), "num_switches": len(lags),
            "switch_lags": lags, "drift_points": _drift(windows, window),
            "settled_drift_points": _settled_drift(windows, window), "window": window, "windows": windows}


def _weighted(results: Sequence[dict], key: str, weight: str) -> float | None:
    pairs = [(r[key], r[weight]) for r in results if r[key] is not None and r[weight] > 0]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def evaluate_many(videos: Iterable[tuple[np.ndarray, schedule_lib.Schedule]], window: int = 64,
                  config: shapes.ShapesWorldConfig | None = None, thresholds: Thresholds = Thresholds(),
                  keep_per_video: bool = False) -> dict:
    """Aggregate `evaluate_stream` over (frames, schedule) pairs: accuracies are frame-weighted means, window i
    pools every video's window i (frame-weighted) and drift is taken on those pooled windows, switch lags are pooled
    (each with its video index), jitters are sample-weighted. Same keys as `evaluate_stream`, plus videos (and
    per_video if keep_per_video)."""
    results = [evaluate_stream(f, s, window, config, thresholds) for f, s in videos]
    if not results:
        raise ValueError("evaluate_many needs at least one (frames, schedule) pair")
    num_windows = max(len(r["windows"]) for r in results)
    windows = []
    for i in range(num_windows):
        rows = [r["windows"][i] for r in results if len(r["windows"]) > i]
        frames = sum(w["frames"] for w in rows)
        kept = [w for w in rows if w["settled_frames"]]
        settled = sum(w["settled_frames"] for w in kept)
        windows.append({"start": i * window, "end": max(w["end"] for w in rows), "frames": frames,
                        **{m: sum(w[m] * w["frames"] for w in rows) / frames for m in METRICS},
                        "settled_frames": settled,
                        "settled": {m: sum(w["settled"][m] * w["settled_frames"] for w in kept) / settled
                                    if settled else None for m in METRICS}})
    lags = [{"video": v, **s} for v, r in enumerate(results) for s in r["switch_lags"]]
    out = {
        "videos": len(results),
        "frames": sum(r["frames"] for r in results),
        **{m: _weighted(results, m, "frames") for m in METRICS},
        **_switches_and_windows(lags, windows, window),
        "size_jitter": _weighted(results, "size_jitter", "size_jitter_samples"),
        "size_jitter_samples": sum(r["size_jitter_samples"] for r in results),
        "position_jitter": _weighted(results, "position_jitter", "position_jitter_samples"),
        "position_jitter_samples": sum(r["position_jitter_samples"] for r in results),
    }
    if keep_per_video:
        out["per_video"] = results
    return out


def _fmt(value, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def format_table(result: dict) -> str:
    """A plain-text report of an `evaluate_stream` / `evaluate_many` result."""
    first, last = result["windows"][0], result["windows"][-1]
    head = f"frames {result['frames']}" + (f" in {result['videos']} videos" if "videos" in result else "")
    lines = [head, f"{'metric':<10} {'accuracy':>9} {'first win':>10} {'last win':>9} {'drift pp':>9} "
                   f"{'settled drift pp':>17}"]
    for m in METRICS:
        lines.append(f"{m:<10} {100 * result[m]:>8.1f}% {100 * first[m]:>9.1f}% {100 * last[m]:>8.1f}% "
                     f"{result['drift_points'][m]:>+9.1f} {_fmt(result['settled_drift_points'][m], '+.1f'):>17}")
    capped = sum(s["capped"] for s in result["switch_lags"])
    lines.append(f"switch lag {_fmt(result['switch_lag_frames'], '.1f', ' frames')} "
                 f"(mean over {result['num_switches']} switches, {capped} never obeyed)")
    lines.append(f"jitter     size {_fmt(result['size_jitter'], '.2f', ' px')}, "
                 f"position {_fmt(result['position_jitter'], '.2f', ' px')}")
    if len(result["windows"]) > 1:
        lines.append(f"per {result['window']}-frame window (present/colour/shape/direction %):")
        for w in result["windows"]:
            lines.append(f"  [{w['start']:>5}, {w['end']:>5}) "
                         + " ".join(f"{100 * w[m]:5.1f}" for m in METRICS))
    return "\n".join(lines)
