"""Loading a trained checkpoint for inference (streaming, evaluation, distillation teachers)."""
from __future__ import annotations

import os

import jax

from streamdit_jax import parallel
from streamdit_jax.checkpoint import Checkpointer
from streamdit_jax.training import steps
from streamdit_jax.training.config import TrainConfig


class CheckpointError(ValueError):
    """A checkpoint path that is missing, empty, or does not match this code's configs."""


def load_for_inference(workdir: str, step: int | None = None, mesh=None):
    """(TrainConfig, graphdef, EMA parameters) from a training WORKDIR (its checkpoints/ folder), placed on ``mesh``
    with its sharding rules (default: one device). Distillation loads its teacher with the student's mesh."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise CheckpointError(f"checkpoint {workdir!r} not found: expected a training workdir holding checkpoints/")
    ckpt = Checkpointer(workdir, async_save=False)
    try:
        if ckpt.latest_step() is None:
            raise CheckpointError(f"checkpoint {workdir!r} holds no saved step")
        try:
            cfg = TrainConfig.from_dict(ckpt.read_config(step))
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(f"checkpoint {workdir!r}: its config does not match this code: {e}") from e
        if mesh is None:
            mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
        graphdef, _, target, _ = steps.abstract_train_state(cfg, mesh)
        try:
            state, _, _ = ckpt.restore(target, step)
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint {workdir!r}: its arrays do not match its config: {e}") from e
    finally:
        ckpt.close()
    return cfg, graphdef, state.ema_params
