"""Schedule records: JSONL files that say what to stream, as a live stream records them and the evaluator reads them.

One line per stream: {"seed": int, "num_frames": int, "prompts": {"0": "...", "64": "..."}}, optionally with
"sampling": {"chunk", "steps_per_chunk", "guidance", "reference_frames", "warmup_frames"} (any of them, as
``Streamer.sampling_settings()`` gives them): with the same checkpoint, seed and sampling settings a record replays
its stream frame for frame. An optional "targets" map, with the same frames as "prompts", holds the canonical
shapes-world caption each prompt means ("A crimson ball drifting leftwards." -> "a red circle moving left"): the
model is given the prompts and the evaluator scores against the targets. ``check_schedule_record`` is the one validator of a record: ``read_schedules`` reads a
file through it and ``format_schedule_record`` (``write_schedule_record`` / ``write_schedules``) checks every record
it writes with it, so whatever is written here reads back. ``parse_prompts`` reads the 'frame:prompt;frame:prompt'
text form of a schedule; ``sampling_choices`` merges explicit sampling choices with the records' block.
"""
from __future__ import annotations

import json
from typing import Mapping, Optional, Sequence

from streamdit_jax.evaluation.schedule import expand_schedule
from streamdit_jax.fileio import write_text_atomic
from streamdit_jax.sampling.pretrained import check_sampling_args
from streamdit_jax.sampling.schedules import check_seed, normalize_schedule

# the keys of a record's "sampling" block (Streamer.sampling_settings()), in the order the messages name them
SAMPLING_KEYS = ("chunk", "steps_per_chunk", "guidance", "reference_frames", "warmup_frames")


def parse_prompts(text: str, name: str = "prompts") -> dict[int, str]:
    """'frame:prompt;frame:prompt' -> {frame: prompt} (a normalized schedule: frame 0 required); ValueError names the
    bad entry, as ``name`` (the command lines pass '--prompts')."""
    if not text.strip():
        raise ValueError(f"{name} is empty; give e.g. {name}='0:a red circle moving left'")
    schedule = {}
    for part in text.split(";"):
        frame, sep, prompt = part.partition(":")
        if not sep or not frame.strip().isdigit() or not prompt.strip():
            raise ValueError(f"{name} entry {part!r} is malformed; expected 'frame:prompt' with an integer frame")
        schedule[int(frame)] = prompt.strip()
    try:
        normalize_schedule(schedule)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    return schedule


def check_sampling_block(block) -> Optional[dict]:
    """A record's "sampling" block (None, or a dict of some of SAMPLING_KEYS), checked by the library's rules
    (``pretrained.check_sampling_args``); ValueError names the bad key or value."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ValueError(f"sampling must be an object with keys from {SAMPLING_KEYS}, got {block!r}")
    unknown = sorted(set(block) - set(SAMPLING_KEYS))
    if unknown:
        raise ValueError(f"sampling has unknown keys {unknown}; valid: {SAMPLING_KEYS}")
    check_sampling_args(prefix="sampling.", **block)
    return dict(block)


def check_targets(targets, prompts: Mapping[int, str]) -> Optional[dict[int, str]]:
    """A record's "targets" (None, or {frame: canonical caption} with exactly the frames of ``prompts``) with int
    keys; ValueError names a frame that one map has and the other lacks (the captions are checked by the scorer)."""
    if targets is None:
        return None
    if not isinstance(targets, Mapping):
        raise ValueError(f"targets must be an object {{frame: canonical caption}}, got {targets!r}")
    targets = {int(k): str(v) for k, v in targets.items()}
    if set(targets) != set(prompts):
        raise ValueError(f"targets must name the frames of prompts: prompts at {sorted(prompts)}, targets at "
                         f"{sorted(targets)}")
    return targets


def scored_schedule(record: Mapping) -> dict[int, str]:
    """What the evaluator scores a record's stream against: its "targets" when it has them, else its "prompts"."""
    return record.get("targets") or record["prompts"]


def check_schedule_record(record: Mapping, scorable: bool = True) -> dict:
    """A schedule record (a JSONL line's object; frame keys as strings or ints) as {"seed": int, "num_frames": int,
    "prompts": {int: str}, "targets": {int: str} or None, "sampling": dict or None}. Raises ValueError naming the bad
    value (KeyError, TypeError or AttributeError for a missing key or a value of the wrong kind): a seed outside
    [0, 2^32 - 1], num_frames < 1, a schedule without frame 0 or with a switch at or after num_frames, targets at
    other frames than the prompts, a bad sampling block; with ``scorable`` also a scored caption (the targets, else
    the prompts) outside the shapes-world grammar (the evaluator scores only those; a stream takes any prompt)."""
    seed = check_seed(record["seed"])
    num_frames = int(record["num_frames"])
    prompts = {int(k): str(v) for k, v in record["prompts"].items()}
    sampling = check_sampling_block(record.get("sampling"))
    normalize_schedule(prompts)
    targets = check_targets(record.get("targets"), prompts)
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames} must be >= 1")
    late = [frame for frame in prompts if frame >= num_frames]
    if late:
        raise ValueError(f"schedule entry {late[0]}: {prompts[late[0]]!r}: frame index must be in "
                         f"[0, {num_frames})")
    if scorable:
        expand_schedule(targets or prompts, num_frames)
    return {"seed": seed, "num_frames": num_frames, "prompts": prompts, "targets": targets, "sampling": sampling}


def read_schedules(path: str, name: str = "schedules", scorable: bool = True) -> list[dict]:
    """The records of the JSONL file ``path`` (blank lines skipped), each ``check_schedule_record``'s dict plus
    "line" (its line number). ValueError, naming the file as ``name`` (the command lines pass '--schedules'), for a
    file that cannot be read or holds no record, and naming the line for a malformed one."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ValueError(f"{name}={path!r} cannot be read: {e}") from None
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append({"line": i, **check_schedule_record(json.loads(line), scorable)})
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{name} line {i} is malformed ({e}): {line[:120]!r}") from None
    if not out:
        raise ValueError(f"{name}={path!r} holds no schedules")
    return out


def sampling_choices(schedules: Sequence[Mapping], given: Mapping[str, object], prefix: str = "",
                     name: str = "schedules") -> tuple[dict, list[str]]:
    """({key: value or None (the checkpoint's default)} for every SAMPLING_KEYS, notes to show the user).

    ``given`` holds the explicit choices, which win; every other key comes from the schedules' "sampling" block,
    which must be the same on every schedule, since one sampler streams them all (ValueError names two lines that
    differ, the file as ``name``). The notes name each explicit choice that differs from the record (written as
    ``prefix + key``: the replay then differs from the recorded stream) and the record's settings, if any."""
    first = schedules[0]
    for item in schedules[1:]:
        if item.get("sampling") != first.get("sampling"):
            raise ValueError(f"{name} lines {first.get('line')} and {item.get('line')} hold different sampling "
                             f"settings ({first.get('sampling')} vs {item.get('sampling')}); one run streams every "
                             f"schedule with one sampler: split the file")
    recorded = first.get("sampling") or {}
    choices, notes = {}, []
    for key in SAMPLING_KEYS:
        if key in given:
            choices[key] = given[key]
            if key in recorded and recorded[key] != given[key]:
                notes.append(f"note: {prefix}{key}={given[key]} overrides the schedules' recorded {key}="
                             f"{recorded[key]} (the replay differs from the recorded stream)")
        else:
            choices[key] = recorded.get(key)
    if recorded:
        notes.append(f"sampling settings from the schedules' record: {recorded}")
    return choices, notes


def format_schedule_record(seed: int, num_frames: int, prompts: Mapping[int, str],
                           sampling: Optional[dict] = None, targets: Optional[Mapping[int, str]] = None) -> str:
    """One JSONL line (newline included) holding the record, its "targets" and "sampling" only when given; ValueError
    when ``check_schedule_record`` would not read it back (prompts need not be scorable: a stream takes any prompt)."""
    record = {"seed": seed, "num_frames": num_frames, "prompts": {str(f): p for f, p in prompts.items()}}
    if targets is not None:
        record["targets"] = {str(f): t for f, t in targets.items()}
    if sampling is not None:
        record["sampling"] = sampling
    line = json.dumps(record)
    check_schedule_record(json.loads(line), scorable=False)  # as a reader will see it
    return line + "\n"


def write_schedules(path: str, schedules: Sequence[Mapping]) -> None:
    """Writes ``schedules`` (dicts of seed, num_frames, prompts and optionally targets and sampling) as a schedule
    file, replaced atomically."""
    write_text_atomic(path, "".join(format_schedule_record(s["seed"], s["num_frames"], s["prompts"],
                                                           s.get("sampling"), s.get("targets")) for s in schedules))


def write_schedule_record(path: str, seed: int, num_frames: int, prompts: Mapping[int, str], sampling: dict) -> None:
    """The record of a stream of which ``num_frames`` frames were written so far, as a one-line schedule file replaced
    atomically (a reader never sees half a record). Switches at frames not yet written (the denoising thread runs a
    few chunks ahead) are left out."""
    kept = {f: p for f, p in sorted(prompts.items()) if f < num_frames or f == 0}
    write_text_atomic(path, format_schedule_record(seed, num_frames, kept, sampling))
