"""The config of a distillation student: the teacher's saved config with a distillation overlay on top."""
from __future__ import annotations

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
    """The teacher's saved config with the distillation config on top (the model always stays the teacher's).

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
    saved = resolve_saved_config(saved, teacher).to_dict()
    if "model" in overrides:
        raise ValueError("a distillation config must not set `model`: the student is the teacher's model")
    d = merge(saved, overrides)
    d["distill"] = {**(d.get("distill") or {}), "teacher": teacher}  # a config without a distill block: defaults
    d["init_from"] = ""  # the student starts from the teacher, whatever the teacher itself was started from
    data = d.get("data") or {}
    teacher_data = os.path.join(teacher, "data")
    precomputed = "precomputed" in (data.get("latent_source"), data.get("text_source"))
    if precomputed and not data.get("data_dir") and os.path.isdir(teacher_data):
        # latents and caption embeddings are the teacher's to share (the same clips, encoders and windows), and
        # remaking them means running the VAE over every clip and umT5 over every caption again
        d["data"] = {**data, "data_dir": teacher_data}
    return TrainConfig.from_dict(d)
