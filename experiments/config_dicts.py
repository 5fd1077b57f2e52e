"""ConfigDicts generated from the library's config dataclasses, and the config flag's errors as one line + exit 2.

Every config file starts from ``config_dict()`` (or ``distill_config_dict()``) and sets only what differs, so every
field of TrainConfig exists in every config and ``--config.KEY=VALUE`` reaches it (absl's lock_config refuses keys
that do not exist). How each kind of field is represented:

* plain fields and the sub-dataclasses optim, data, schedule: their values (tuples stay tuples), nested ConfigDicts;
* ``mesh``: {axis: size} (``--config.mesh.fsdp=-1``). A ConfigDict sorts its keys, so a config's axes come in the
  order context, data, fsdp, tensor, as the hand-written config files always gave them (the equality of
  ``from_dict(config_dict(cfg).to_dict())`` and ``cfg`` holds up to that order);
* ``model``: ``name`` plus every ModelConfig field (and ``model.text``'s). A field the config sets holds its value;
  the others are typed placeholders (None) that ``TrainConfig.from_dict`` fills from the base config ``model.name``
  picks (MODEL_CONFIGS; no name: ``training.config.DEFAULT_MODEL``). So ``--config.model.name=small`` still switches
  the base and ``--config.model.depth=4`` overrides one field of it (today's semantics of ``model.name``);
* ``chunk_probs`` (Optional): a tuple placeholder, None = uniform (``--config.chunk_probs="(0.1,0.2,0.3,0.4)"``);
* ``distill`` (Optional): a sub-ConfigDict with a typed placeholder per DistillConfig field. All None (every
  training config) = no distillation; ``from_dict`` gives unset fields DistillConfig's defaults. A distillation config
  (``distill_config_dict``) holds real values instead.

A distillation config is merged on top of the teacher's saved config
(``streamdit_jax.training.distill_config.student_config``), where a placeholder's None would overwrite the teacher's
value; so ``distill_config_dict`` holds only what a distillation may choose: the scheme (not distill.teacher: the
--teacher flag), the optimiser, the mesh, the run's loop settings (DISTILL_KEYS) and the data's number of clips and
seed. Everything else (model, data world, buffer, chunk sizes, schedule, autoencoder) is the teacher's, and overriding
it is refused as an unknown key.

The entry points parse their flags with ``experiments.flag_parsing.parse_flags`` (one line + exit 2 on any flag error).
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Optional, Sequence

from ml_collections import ConfigDict, config_dict as ml_config_dict

from streamdit_jax.models.config import ModelConfig, TextEncoderConfig
from streamdit_jax.configs import DistillConfig, TrainConfig, base_model_config

# the top-level TrainConfig keys a distillation config may set on top of the teacher's (besides distill, optim,
# data.num_clips / data.seed and mesh)
DISTILL_KEYS = ("batch_size", "total_steps", "seed", "ema_decay", "ema_warmup", "log_every", "checkpoint_every",
                "keep_checkpoints", "async_checkpoint", "sample_every", "sample_steps")
DISTILL_DATA_KEYS = ("num_clips", "seed")


def _field_type(cls, name: str) -> type:
    """The runtime type a placeholder of ``cls.name`` holds: Optional[X] -> X, tuple[...] -> tuple."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def _values(obj, skip: Sequence[str] = ()) -> ConfigDict:
    """Every field of a (flat) config dataclass with its value; tuples stay tuples."""
    return ConfigDict({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in skip})


def _placeholders(cls, values: dict[str, Any]) -> ConfigDict:
    """Every field of ``cls`` as a typed placeholder (None), except those in ``values``; a dataclass-typed field is
    a sub-ConfigDict of the same kind (its ``values`` entry a dict)."""
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; valid: "
                         f"{sorted(f.name for f in dataclasses.fields(cls))}")
    out = ConfigDict()
    for f in dataclasses.fields(cls):
        kind = _field_type(cls, f.name)
        if dataclasses.is_dataclass(kind):
            out[f.name] = _placeholders(kind, dict(values.get(f.name) or {}))
        elif f.name in values:
            out[f.name] = values[f.name]
        else:
            out[f.name] = ml_config_dict.placeholder(kind)
    return out


def model_dict(name: Optional[str] = None, **overrides) -> ConfigDict:
    """The ``model`` section: base ``name`` (MODEL_CONFIGS; None: DEFAULT_MODEL) and the fields that differ from it
    (``text=dict(...)`` for text encoder fields); every other field is a typed placeholder (None = the base's)."""
    base_model_config(name)  # ValueError naming an unknown name
    out = _placeholders(ModelConfig, overrides)
    out.name = name if name is not None else ml_config_dict.placeholder(str)
    return out


def config_dict(cfg: Optional[TrainConfig] = None, *, model_name: Optional[str] = None) -> ConfigDict:
    """Every field of ``cfg`` (default TrainConfig()) as a ConfigDict that ``TrainConfig.from_dict(d.to_dict())``
    turns back into ``cfg``; the model section is relative to the base config ``model_name`` (see module doc)."""
    cfg = TrainConfig() if cfg is None else cfg
    base = base_model_config(model_name)
    out = ConfigDict()
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name == "model":
            changed = {m.name: getattr(value, m.name) for m in dataclasses.fields(ModelConfig)
                       if m.name != "text" and getattr(value, m.name) != getattr(base, m.name)}
            text = {t.name: getattr(value.text, t.name) for t in dataclasses.fields(TextEncoderConfig)
                    if getattr(value.text, t.name) != getattr(base.text, t.name)}
            out.model = model_dict(model_name, text=text, **changed)
        elif f.name == "mesh":
            out.mesh = ConfigDict(dict(value.axes))
        elif f.name == "distill":
            out.distill = _placeholders(DistillConfig, {} if value is None else dataclasses.asdict(value))
        elif dataclasses.is_dataclass(value):
            out[f.name] = _values(value)
        elif value is None:
            out[f.name] = ml_config_dict.placeholder(_field_type(TrainConfig, f.name))
        else:
            out[f.name] = value
    return out


def distill_config_dict(distill: DistillConfig = DistillConfig(), student: Optional[TrainConfig] = None
                        ) -> ConfigDict:
    """A distillation config: the overlay ``student_config`` merges on top of the teacher's saved config.

    Holds every DistillConfig field but ``teacher`` (the --teacher flag), the optimiser, ``mesh``, DISTILL_KEYS and
    DISTILL_DATA_KEYS, with the values of ``distill`` and ``student`` (default TrainConfig())."""
    student = TrainConfig() if student is None else student
    out = ConfigDict()
    out.distill = _values(distill, skip=("teacher",))
    out.optim = _values(student.optim)
    out.data = ConfigDict({k: getattr(student.data, k) for k in DISTILL_DATA_KEYS})
    out.mesh = ConfigDict(dict(student.mesh.axes))
    for key in DISTILL_KEYS:
        out[key] = getattr(student, key)
    return out


def config_variant(arg: Optional[str], variants: Sequence[str], config_file: str) -> str:
    """The variant a config file's argument names (``--config=FILE.py:ARG``; no argument: the first of ``variants``),
    or ValueError naming it and the valid ones."""
    variant = arg or variants[0]
    if variant not in variants:
        raise ValueError(f"{config_file} config argument {variant!r} is unknown; valid: {tuple(variants)} "
                         f"(e.g. --config=experiments/configs/{config_file}.py:{variants[-1]})")
    return variant
