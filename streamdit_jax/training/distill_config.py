"""The config of a distillation student: the teacher's saved config with a distillation overlay on top."""
from __future__ import annotations

import dataclasses
import os

from streamdit_jax.checkpoint import Checkpointer
from streamdit_jax.configs import TrainConfig
from streamdit_jax.restore import CheckpointError, resolve_saved_config


def merge(base: dict, overrides: dict) -> dict:
    """``overrides`` on top of ``base``; nested dicts merge key by key."""
    out = dict(base)
    for k, v in overrides.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def student_config(teacher: str, overrides: dict) -> TrainConfig:
    """The teacher's saved config with the distillation config on top (the model always stays the teacher's); a
    student of precomputed data reads the teacher's data directory when its frames dataset is the teacher's
    (``shared_data_dir``).

    Raises CheckpointError when ``teacher`` holds no readable checkpoint; ValueError when ``overrides`` sets
    ``model``; ``TrainConfig.from_dict``'s ValueError or TypeError when the merged config is invalid."""
    try:
        ckpt = Checkpointer(teacher, async_save=False)
        if ckpt.latest_step() is None:
            raise CheckpointError(f"teacher {teacher!r} holds no checkpoint")
        saved = ckpt.read_config()
        ckpt.close()
    except (OSError, ValueError, FileNotFoundError) as e:
        raise CheckpointError(f"teacher {teacher!r} cannot be read: {e}") from e
    # the teacher's paths as they are on this machine (its own autoencoder copy), wherever it was trained
    teacher_cfg = resolve_saved_config(saved, teacher)
    if "model" in overrides:
        raise ValueError("a distillation config must not set `model`: the student is the teacher's model")
    d = merge(teacher_cfg.to_dict(), overrides)
    d["distill"] = {**(d.get("distill") or {}), "teacher": teacher}  # a config without a distill block: defaults
    d["init_from"] = ""  # the student starts from the teacher, whatever the teacher itself was started from
    student = TrainConfig.from_dict(d)
    shared = shared_data_dir(teacher, teacher_cfg, student)
    return dataclasses.replace(student, data=dataclasses.replace(student.data, data_dir=shared)) if shared else student


def shared_data_dir(teacher: str, teacher_cfg: TrainConfig, student: TrainConfig) -> str:
    """The teacher's data directory (absolute) when the student should read its data from there, else "": when the
    student reads precomputed latents or caption embeddings, names no data_dir of its own, and its frames dataset is
    the one the teacher trained on (a distillation overlay's data.num_clips / seed may make another). Why: remaking
    them means running the VAE over every clip and the text encoder over every caption again, for the same result."""
    data = student.data
    teacher_data = os.path.abspath(os.path.join(teacher, "data"))
    if (data.data_dir or "precomputed" not in (data.latent_source, data.text_source)
            or teacher_cfg.data.data_dir or not os.path.isdir(teacher_data)):
        return ""
    from streamdit_jax.data.tfds_builders import data_source_name  # tfds: only for a precomputed student
    from streamdit_jax.training.input import make_dataset_builder
    frames = lambda cfg: data_source_name(make_dataset_builder(cfg, teacher))
    try:
        same = frames(student) == frames(teacher_cfg)
    except ValueError:  # e.g. the teacher's video folder is gone: the student's own checks name it
        return ""
    return teacher_data if same else ""
