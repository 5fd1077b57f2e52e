"""Does a model draw the motion its prompt names? Constant-prompt streams, the same noise seeds under each word.

``probe(streamer, seeds, num_frames, start_frames)`` streams, for each direction word and each seed i, the constant
prompt "a <colour> <shape> moving <word>" (objects cycle through ``OBJECTS``) with noise seed ``base_seed + i``, so
the words share their noise and differ only in the word; it scores the direction accuracy over the stream's start and
over the rest, and the motion seen every 4 frames (L/R/U/D, '-' none). A model whose word sets only the motion's axis
draws the same letters for left and right. ``format_probe`` prints the result.
"""
from __future__ import annotations

import numpy as np

from streamdit_jax import shapes_world as shapes
from streamdit_jax.evaluation import shapes_metrics

OBJECTS = (("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "circle"), ("white", "square"),
           ("cyan", "triangle"), ("magenta", "circle"))
LETTERS = "".join(m[0].upper() for m in shapes.MOTIONS)  # L R U D


def motion_letters(pred_motion: np.ndarray, every: int = 4) -> str:
    """The seen motion of every ``every``-th frame as L/R/U/D ('-': none)."""
    return "".join("-" if m == shapes_metrics.NO_MOTION else LETTERS[m] for m in np.asarray(pred_motion)[::every])


def probe(streamer, seeds: int, num_frames: int, start_frames: int, base_seed: int = 500) -> dict:
    """{word: {"start": acc, "later": acc, "motion": [letters per seed]}} over constant-prompt streams."""
    if not 0 < start_frames < num_frames:
        raise ValueError(f"start_frames={start_frames} must be in [1, num_frames={num_frames})")
    out = {}
    for word in shapes.MOTIONS:
        start, later, motion = [], [], []
        for i in range(seeds):
            colour, shape = OBJECTS[i % len(OBJECTS)]
            schedule = {0: f"a {colour} {shape} moving {word}"}
            frames = np.concatenate(list(streamer.frames(schedule, num_frames, base_seed + i)))
            scores = shapes_metrics.score_frames(frames, schedule)
            start.append(scores.direction[:start_frames].mean())
            later.append(scores.direction[start_frames:].mean())
            motion.append(motion_letters(scores.pred_motion[:, 0]))
        out[word] = {"start": float(np.mean(start)), "later": float(np.mean(later)), "motion": motion}
    return out


def format_probe(result: dict, start_frames: int) -> str:
    """``probe``'s result as a table: a row per word (accuracy % over the start and later, the letters per seed)."""
    lines = [f"word    first {start_frames:3d}  later   motion every 4 frames, one stream per seed"]
    for word, r in result.items():
        lines.append(f"{word:6s}  {100 * r['start']:8.1f}  {100 * r['later']:5.1f}   {' '.join(r['motion'])}")
    return "\n".join(lines)
