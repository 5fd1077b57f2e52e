"""Loading a trained checkpoint for inference (streaming, evaluation, distillation teachers)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp

from streamdit_jax import parallel
from streamdit_jax.checkpoint import Checkpointer
from streamdit_jax.models.learned_autoencoder import is_autoencoder_dir
from streamdit_jax.training import steps
from streamdit_jax.training.config import TrainConfig


INFERENCE_EXPORT = "inference_export"  # key of the data item that marks an EMA-only export
AUTOENCODER_DIR = "autoencoder"  # a workdir's / export's own copy of its learned autoencoder


class CheckpointError(ValueError):
    """A checkpoint path that is missing, empty, or does not match this code's configs."""


def copy_autoencoder(source: str, workdir: str, replace: bool = False) -> str:
    """Copies the learned autoencoder directory ``source`` to WORKDIR/autoencoder (atomically). A copy already there
    is kept (a resumed run keeps the one it trained with) unless ``replace`` (an export over an older export)."""
    target = os.path.join(workdir, AUTOENCODER_DIR)
    if replace or not is_autoencoder_dir(target):
        os.makedirs(workdir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-autoencoder", dir=workdir)
        shutil.copytree(source, os.path.join(tmp, "ae"))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(os.path.join(tmp, "ae"), target)
        shutil.rmtree(tmp, ignore_errors=True)
    return os.path.abspath(target)


def with_local_autoencoder(cfg: TrainConfig, workdir: str, stage: bool = False) -> TrainConfig:
    """``cfg`` with its learned autoencoder pointing at WORKDIR's own copy, so a checkpoint moved or cloned to another
    machine still finds it. ``stage`` (training, process 0) first copies ``cfg.autoencoder`` there. CheckpointError
    naming both places if neither holds it. Configs with the patch autoencoder come back unchanged."""
    if not cfg.autoencoder:
        return cfg
    local = os.path.join(workdir, AUTOENCODER_DIR)
    if stage and not is_autoencoder_dir(local) and is_autoencoder_dir(cfg.autoencoder):
        copy_autoencoder(cfg.autoencoder, workdir)
    if is_autoencoder_dir(local):
        return dataclasses.replace(cfg, autoencoder=os.path.abspath(local))
    if is_autoencoder_dir(cfg.autoencoder):
        return cfg
    raise CheckpointError(f"learned autoencoder {cfg.autoencoder!r} not found, and {workdir!r} holds no copy in "
                          f"{AUTOENCODER_DIR}/ (train one with `python -m experiments.train_autoencoder`)")


def load_for_inference(workdir: str, step: int | None = None, mesh=None):
    """(TrainConfig, graphdef, EMA parameters) from a training WORKDIR (its checkpoints/ folder), placed on ``mesh``
    with its sharding rules (default: one device). Distillation loads its teacher with the student's mesh."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise CheckpointError(f"checkpoint {workdir!r} not found: expected a training workdir holding checkpoints/")
    ckpt = Checkpointer(workdir, async_save=False)
    try:
        if ckpt.latest_step() is None:
            raise CheckpointError(f"checkpoint {workdir!r} holds no saved step")
        if step is not None and step not in ckpt.all_steps():
            raise CheckpointError(f"checkpoint {workdir!r} holds no step {step}; saved steps: {ckpt.all_steps()}")
        try:
            cfg = TrainConfig.from_dict(ckpt.read_config(step))
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(f"checkpoint {workdir!r}: its config does not match this code: {e}") from e
        cfg = with_local_autoencoder(cfg, workdir)
        if mesh is None:
            mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
        graphdef, _, target, _ = steps.abstract_train_state(cfg, mesh)
        export = ckpt.read_data(step).get(INFERENCE_EXPORT)
        if export:  # EMA parameters only, stored in export["dtype"]
            target = {"ema_params": jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(a.shape, jnp.dtype(export["dtype"]), sharding=a.sharding),
                target.ema_params)}
        try:
            state, _, _ = ckpt.restore(target, step)
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint {workdir!r}: its arrays do not match its config: {e}") from e
    finally:
        ckpt.close()
    if export:
        dtype = jnp.dtype(cfg.model.param_dtype)
        return cfg, graphdef, jax.tree.map(lambda x: x.astype(dtype), state["ema_params"])
    return cfg, graphdef, state.ema_params


def export_for_inference(workdir: str, output: str, dtype: str = "float16", step: int | None = None) -> dict:
    """Writes the EMA parameters of WORKDIR's checkpoint (cast to ``dtype``), its config and a description into
    OUTPUT/checkpoints/<step>: what a bundled checkpoint needs (no optimizer state, no raw parameters), and what
    ``load_for_inference`` reads back (cast to the model's param dtype). Returns the description."""
    cfg, _, params = load_for_inference(workdir, step)
    src = Checkpointer(workdir, async_save=False)
    step = src.latest_step() if step is None else step
    src.close()
    small = jax.tree.map(lambda x: x.astype(jnp.dtype(dtype)), params)
    info = {"source": os.path.abspath(workdir), "step": int(step), "dtype": str(jnp.dtype(dtype)),
            "params": int(sum(x.size for x in jax.tree.leaves(small)))}
    out = Checkpointer(output, async_save=False, max_to_keep=1)
    try:
        out.save(int(step), {"ema_params": small}, cfg.to_dict(), {INFERENCE_EXPORT: info}, force=True)
    finally:
        out.close()
    if cfg.autoencoder:
        copy_autoencoder(cfg.autoencoder, output, replace=True)
    return info
