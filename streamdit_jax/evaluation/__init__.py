"""Evaluation of generated shapes-world streams.

`evaluate_stream(frames, schedule)` scores one video against its prompt schedule (present / colour / shape /
direction accuracy, per-window drift, prompt-switch lag, jitter); `evaluate_many` pools videos; `format_table` prints
a result. `score_frames` gives the per-frame detail. Modules: `schedule` (schedules), `blobs` (pixels -> blobs),
`shape_classifier` (blob -> shape), `shapes_metrics` (the metrics); `driver` (stream schedules with a checkpoint and
score them) and `direction_probe` (per-word direction accuracy) stream, so they are imported on their own.
"""
from streamdit_jax.evaluation.schedule import expand_schedule, switches
from streamdit_jax.evaluation.shapes_metrics import (METRICS, FrameScores, Thresholds, evaluate_many,
                                                     evaluate_stream, format_table, score_frames, switch_lags)

__all__ = ["METRICS", "FrameScores", "Thresholds", "evaluate_many", "evaluate_stream", "expand_schedule",
           "format_table", "score_frames", "switch_lags", "switches"]
