"""Prompt schedules for scoring a stream: which caption is active at each frame, and where it switches.

A generated stream is judged frame by frame against the prompt that was active when the frame was generated
(Sec. 6, prompt switching). Schedules come in two forms:

* a list of T captions, one per frame (e.g. `ShapesClip.captions` of a rendered video);
* a dict {frame_index: caption}: the caption holds from its index until the next key (how a streaming run is
  driven: "start with A, switch to B at frame 120").

`expand_schedule` turns either into the per-frame list, rejecting anything the shapes-world grammar cannot score;
`prompt_table` turns the list into integer arrays; `switches` lists the attributes that change at each switch.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence, Union

import numpy as np

from streamdit_jax import shapes_wording, shapes_world as shapes

Schedule = Union[Sequence[str], Mapping[int, str]]

# Per-object attributes a prompt can set, and the per-frame metric that checks each one.
ATTRIBUTE_METRIC = {"colour": "colour", "shape": "shape", "motion": "direction"}


def _check_caption(where: str, text) -> None:
    try:
        shapes.parse_caption(text)
    except (ValueError, TypeError) as e:
        raise ValueError(f"schedule entry {where}: {e}") from None


def expand_schedule(schedule: Schedule, num_frames: int) -> list[str]:
    """The caption active at each of num_frames frames.

    schedule: a list of num_frames captions, or a dict {frame_index: caption} whose caption holds from its index to
      the next key. Raises ValueError naming the offending entry if the schedule is empty, a dict lacks key 0, an
      index is not an int in [0, num_frames), a list has the wrong length, or a caption does not parse with
      `shapes.parse_caption`.
    """
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be an int >= 1, got {num_frames!r}")
    num_frames = int(num_frames)
    if isinstance(schedule, Mapping):
        if not schedule:
            raise ValueError("schedule is empty: it needs at least the prompt at frame 0")
        for key, text in schedule.items():
            if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
                raise ValueError(f"schedule entry {key!r}: {text!r}: frame index must be an int, "
                                 f"got {type(key).__name__}")
            if not 0 <= key < num_frames:
                raise ValueError(f"schedule entry {key!r}: {text!r}: frame index must be in [0, {num_frames})")
            _check_caption(f"{key!r}", text)
        if 0 not in schedule:
            raise ValueError(f"schedule has no prompt at frame 0 (keys: {sorted(schedule)})")
        keys = sorted(int(k) for k in schedule)
        bounds = keys[1:] + [num_frames]
        out = []
        for start, stop in zip(keys, bounds):
            out.extend([schedule[start]] * (stop - start))
        return out
    if isinstance(schedule, str):
        raise ValueError(f"schedule must be a list of per-frame captions or a dict, got the string {schedule!r}")
    schedule = list(schedule)
    if not schedule:
        raise ValueError("schedule is empty: it needs one caption per frame")
    if len(schedule) != num_frames:
        raise ValueError(f"schedule has {len(schedule)} captions for {num_frames} frames")
    seen = set()
    for i, text in enumerate(schedule):
        if not isinstance(text, str) or text not in seen:  # parse each distinct caption once
            _check_caption(f"[{i}]", text)
            seen.add(text)
    return schedule


class PromptTable(NamedTuple):
    """Per-frame prompt attributes as integer arrays [T, K] (K = most objects any prompt names; -1 = no object).

    colour/shape/motion index `shapes.COLOURS` / `SHAPES` / `MOTIONS`; num_objects [T]; prompt_id [T] numbers the
    distinct captions, so equal ids mean the same prompt.
    """

    colour: np.ndarray
    shape: np.ndarray
    motion: np.ndarray
    num_objects: np.ndarray
    prompt_id: np.ndarray


def prompt_table(captions: Sequence[str]) -> PromptTable:
    """Parse per-frame captions (each distinct caption once) into a `PromptTable`."""
    distinct, prompt_id = np.unique(np.asarray(captions, dtype=object).astype(str), return_inverse=True)
    parsed = [shapes.parse_caption(str(c)) for c in distinct]
    k = max(len(p) for p in parsed)
    table = np.full((len(parsed), 3, k), -1, np.int32)
    for i, objects in enumerate(parsed):
        for j, o in enumerate(objects):
            table[i, :, j] = (shapes.COLOURS.index(o.colour), shapes.SHAPES.index(o.shape),
                              shapes.MOTIONS.index(o.motion))
    per_frame = table[prompt_id]
    num = np.array([len(p) for p in parsed], np.int32)[prompt_id]
    return PromptTable(per_frame[:, 0], per_frame[:, 1], per_frame[:, 2], num, prompt_id.astype(np.int32))


class Switch(NamedTuple):
    """A prompt switch at `frame`: the (object index, attribute) pairs that change there.

    attribute is "colour", "shape" or "motion"; an object the previous prompt did not have changes all three.
    Objects are matched by their position in the caption (the shapes world keeps the order when it switches).
    """

    frame: int
    changes: tuple[tuple[int, str], ...]


def switches(captions: Sequence[str]) -> list[Switch]:
    """Every frame f > 0 whose caption differs from frame f - 1's, with what changed (empty `changes` when only
    an object disappeared)."""
    out = []
    for f in range(1, len(captions)):
        if captions[f] == captions[f - 1]:
            continue
        old, new = shapes.parse_caption(captions[f - 1]), shapes.parse_caption(captions[f])
        changes = []
        for j, o in enumerate(new):
            for attribute in ("colour", "shape", "motion"):
                if j >= len(old) or getattr(old[j], attribute) != getattr(o, attribute):
                    changes.append((j, attribute))
        out.append(Switch(f, tuple(changes)))
    return out


def random_schedule(seed: int, num_frames: int = 256, switch_every: int = 64) -> dict[int, str]:
    """A one-object prompt schedule of the shapes-world grammar: a random first prompt, then every ``switch_every``
    frames ONE attribute (shape, colour or motion) changes to a different value, as in the world itself."""
    rng = np.random.default_rng(seed)
    pools = (shapes.SHAPES, shapes.COLOURS, shapes.MOTIONS)
    current = [str(rng.choice(pool)) for pool in pools]
    schedule = {}
    for frame in range(0, num_frames, switch_every):
        if frame:
            which = int(rng.integers(3))
            current[which] = str(rng.choice([v for v in pools[which] if v != current[which]]))
        shape, colour, motion = current
        schedule[frame] = f"a {colour} {shape} moving {motion}"
    return schedule


def default_schedules(count: int = 20, num_frames: int = 256, switch_every: int = 64) -> list[dict]:
    """The evaluator's default benchmark: ``count`` seeded random schedules (seeds 0..count-1)."""
    return [{"seed": s, "num_frames": num_frames, "prompts": random_schedule(s, num_frames, switch_every)}
            for s in range(count)]


def reword_schedules(schedules: Sequence[Mapping], split: str = "heldout", seed: int = 0) -> list[dict]:
    """Free-text versions of canonical schedules: each prompt reworded by ``shapes_wording.paraphrase`` in ``split``'s
    words ("heldout": wording no training caption used), the canonical captions kept as the record's "targets" (what
    the evaluator scores against). Deterministic in (``seed``, each record's seed); other keys are kept."""
    out = []
    for record in schedules:
        targets = dict(record.get("targets") or record["prompts"])
        rng = np.random.default_rng([seed, int(record["seed"])])
        prompts = {frame: shapes_wording.paraphrase(text, rng, split) for frame, text in sorted(targets.items())}
        out.append({**record, "prompts": prompts, "targets": targets})
    return out
