"""Fine-tuning from a checkpoint whose model differs in a known part: ``init_fresh`` names the parameters that start
from this run's fresh initialisation; every other parameter comes from the checkpoint and must match it in shape.

The case it exists for is swapping the text encoder (e.g. the byte encoder for a frozen MiniLM): the denoiser's
self-attention, MLPs and adaLN keep what they learned about the video, while the projections that read the text
(cross-attention keys/values, the pooled-text projection: their input width is the encoder's) start afresh.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Sequence

import jax

from streamdit_jax import weights


class PartialInitError(ValueError):
    """The checkpoint cannot start this run with the given ``init_fresh`` (names the parameters and patterns)."""


def merge_fresh(checkpoint_params: Any, fresh_params: Any, patterns: Sequence[str]) -> tuple[Any, list[str]]:
    """(``fresh_params``' tree with every leaf whose dotted name (``weights.tensor_name``) no pattern fully matches
    replaced by the checkpoint's leaf of that name, the names kept fresh). PartialInitError names the parameters the
    checkpoint lacks or holds in another shape (match them with a pattern to start them fresh) and any pattern that
    matches no parameter (a typo would silently load everything)."""
    theirs = weights.flatten(checkpoint_params)
    compiled = [re.compile(p) for p in patterns]
    used, kept_fresh, missing, reshaped = set(), [], [], []

    def pick(path, leaf):
        name = weights.tensor_name(path)
        hits = [p.pattern for p in compiled if p.fullmatch(name)]
        if hits:
            used.update(hits)
            kept_fresh.append(name)
            return leaf
        if name not in theirs:
            missing.append(name)
        elif theirs[name].shape != leaf.shape:
            reshaped.append(f"{name} {tuple(theirs[name].shape)} -> {tuple(leaf.shape)}")
        else:
            return theirs[name]
        return leaf

    merged = jax.tree_util.tree_map_with_path(pick, fresh_params)
    unused = [p for p in patterns if p not in used]
    quoted = lambda ps: "[" + ", ".join(f"'{p}'" for p in ps) + "]"  # as written, not repr's doubled backslashes
    if missing or reshaped or unused:
        parts = []
        if missing:
            parts.append(f"the checkpoint lacks {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if reshaped:
            parts.append(f"its shapes differ for {reshaped[:8]}{' ...' if len(reshaped) > 8 else ''}")
        if unused:
            parts.append(f"init_fresh patterns {quoted(unused)} match no parameter of this model")
        raise PartialInitError("cannot start from the checkpoint: " + "; ".join(parts) + f" (init_fresh="
                               f"{quoted(patterns)}: parameters matched in full by a pattern start fresh)")
    return merged, kept_fresh


def models_differ_only_in_text(ours, theirs) -> bool:
    """Whether two ModelConfigs are equal up to their text encoder (what ``init_fresh`` may bridge)."""
    return dataclasses.replace(ours, text=theirs.text) == theirs


# How a model is computed, not what its parameters mean: a run may start from a checkpoint that differs in these.
COMPUTE_FIELDS = ("dtype", "remat", "attention_impl")
# A frozen pretrained text encoder (models.text) is its files': where they lie, and the sizes a trainable encoder
# would be built with, say nothing of the states the model was trained to read.
UNUSED_BY_FROZEN_TEXT = ("path", "depth", "num_heads")


def parameter_differences(ours, theirs) -> list[str]:
    """The ModelConfig fields (``text.X`` for the text encoder's) in which ``theirs`` (a checkpoint's model) would
    give this run's model ``ours`` parameters that mean something else: every field but COMPUTE_FIELDS, and for a
    frozen text encoder (kind other than "byte", on both sides) all of model.text but UNUSED_BY_FROZEN_TEXT. Empty:
    the checkpoint's parameters can start ``ours`` (an imported Wan2.1 fine-tuned in another dtype, with remat, and
    with its umT5 directory elsewhere)."""
    a, b = dataclasses.asdict(ours), dataclasses.asdict(theirs)
    diff = sorted(k for k in a if k not in COMPUTE_FIELDS + ("text",) and a[k] != b.get(k))
    frozen = ours.text.kind != "byte" and theirs.text.kind != "byte"
    skip = UNUSED_BY_FROZEN_TEXT if frozen else ()
    return diff + sorted(f"text.{k}" for k in a["text"] if k not in skip and a["text"][k] != b["text"].get(k))


def frozen_encoder_conflict(ours, theirs) -> str:
    """Why a checkpoint trained with the frozen text encoder ``theirs`` (a TextEncoderConfig) cannot start a run
    reading ``ours``, or "": ``parameter_differences`` leaves a frozen encoder's location out, so two directories
    are compared here by their config.json (another architecture, e.g. T5 v1.1-XXL for umT5-XXL, gives the DiT
    states it never saw). Either directory missing, or equal configs: "" (the run's own loader checks its files)."""
    if ours.kind == "byte" or theirs.kind == "byte" or not ours.path or not theirs.path:
        return ""
    if os.path.abspath(ours.path) == os.path.abspath(theirs.path):
        return ""
    configs = []
    for path in (ours.path, theirs.path):
        try:
            with open(os.path.join(path, "config.json")) as f:
                configs.append(json.load(f))
        except (OSError, ValueError):
            return ""
    if configs[0] == configs[1]:
        return ""
    differ = sorted(k for k in set(configs[0]) | set(configs[1]) if configs[0].get(k) != configs[1].get(k))
    return (f"its text encoder {theirs.path!r} and this run's {ours.path!r} are different models (config.json "
            f"differs in {differ[:8]})")
