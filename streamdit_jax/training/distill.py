"""Multistep distillation (Sec. 4.2; STREAMDIT.md section 7): s guided teacher micro steps -> one student step.

The trajectory of the teacher's scheme (K, c, N, s) splits into N segments, one per chunk position. A buffer state
at the start of a macro step is data noised per chunk to its segment start (Eq. 5, one X0 for the whole buffer).
From it the frozen teacher runs its s Euler micro steps with classifier-free guidance (Eq. 6), which gives the
target state; the student (initialised from the teacher, conditional only, no guidance) takes ONE Euler step over
the same segments and must land on that state. The paper does not give the loss; ours is L2 between the landing
states, divided by each frame's segment length squared, i.e. the mean squared error between the student's velocity
and the teacher's average velocity over the segment ``(x_teacher - x) / dtau``: the same minimiser as plain L2 for
any schedule, on the scale of the flow-matching loss (Eq. 4). Step and guidance are distilled at once.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from streamdit_jax import flow, parallel
from streamdit_jax.partition import MicroStepTable, micro_step_table
from streamdit_jax.sampling.buffer import DenoiseFn, integrate, model_denoise_fn
from streamdit_jax.configs import TrainConfig
from streamdit_jax.training.steps import TrainState, apply_gradients, batch_latents, batch_text


def segment_start(latents: jax.Array, x0: jax.Array, table: MicroStepTable) -> jax.Array:
    """The buffer state at the start of a macro step: every frame noised to its segment's start (Eq. 5)."""
    tau = jnp.broadcast_to(jnp.asarray(table.tau_now[0]), latents.shape[:2])
    return flow.interpolate(latents, x0, tau)


def teacher_target(denoise_fn: DenoiseFn, params, x, cond, null_cond, guidance_scale, table: MicroStepTable):
    """The teacher's state after the s (guided, if ``null_cond`` is given) micro steps of ``table`` from ``x``."""
    frames = jnp.arange(x.shape[1], dtype=jnp.int32)
    target, _ = integrate(denoise_fn, params, x, jnp.asarray(table.tau_now), jnp.asarray(table.tau_next),
                          cond, null_cond, guidance_scale, frames)
    return jax.lax.stop_gradient(target)


def segment_lengths(table: MicroStepTable) -> np.ndarray:
    """[B] tau travelled by every slot over one macro step (0 for the K clean reference frames)."""
    return np.asarray(table.tau_next[-1] - table.tau_now[0], np.float32)


def distillation_loss(student_velocity, x, target, table: MicroStepTable):
    """Per-example loss of one student Euler step ``x + v dtau`` against the teacher's ``target`` (see module doc);
    the reference frames (dtau = 0) are masked out. Returns [b]."""
    dtau = segment_lengths(table)
    moving = dtau > 0
    safe = np.where(moving, dtau, 1.0).reshape((1, -1) + (1,) * (x.ndim - 2))
    teacher_velocity = (target - x) / safe
    mask = jnp.broadcast_to(jnp.asarray(moving, jnp.float32), x.shape[:2])
    return flow.flow_matching_loss(student_velocity, teacher_velocity, mask)


def distill_loss(params, teacher_params, graphdef, latents, batch, rng, cfg: TrainConfig, text_params=None):
    """Mean distillation loss of one batch (teacher frozen, guided; student conditional, one step)."""
    table = micro_step_table(cfg.distill_partition(), cfg.schedule)
    x0 = flow.gaussian_noise(rng, latents.shape, latents.dtype)
    x = segment_start(latents, x0, table)
    teacher = nnx.merge(graphdef, teacher_params)
    cond = batch_text(teacher, batch, rng, 0.0, text_params)
    guided = cfg.distill.guidance > 1.0
    # rate 1.0 drops every prompt whatever the key, so sharing x0's key changes nothing (kept: the bundled
    # student's run reproduces); split it before using another rate here
    null = batch_text(teacher, batch, rng, 1.0, text_params) if guided else None
    target = teacher_target(model_denoise_fn(graphdef), teacher_params, x, cond, null,
                            jnp.float32(cfg.distill.guidance), table)
    student = nnx.merge(graphdef, params)
    tau = jnp.broadcast_to(jnp.asarray(table.tau_now[0]), x.shape[:2])
    v = student(x, tau, *batch_text(student, batch, rng, 0.0, text_params))  # conditional only: never guided
    per_example = distillation_loss(v, x, target, table)
    return jnp.mean(per_example), per_example


def distill_step(state: TrainState, teacher_params: Any, batch: dict, frozen=None, *, graphdef,
                 tx: optax.GradientTransformation, cfg: TrainConfig):
    """One student optimizer step (same update, EMA and NaN guard as ``train_step``)."""
    rng = jax.random.fold_in(state.rng, state.step)
    frozen = frozen or {}
    latents = batch_latents(batch, cfg, frozen.get("autoencoder"))
    (loss, _), grads = jax.value_and_grad(distill_loss, has_aux=True)(
        state.params, teacher_params, graphdef, latents, batch, rng, cfg, frozen.get("text_encoder"))
    return apply_gradients(state, loss, grads, tx=tx, cfg=cfg)


def make_distill_step(cfg: TrainConfig, graphdef, tx, state_shardings, batch_sharding):
    """``distill_step(state, teacher_params, batch, frozen)`` jitted once: state donated, the teacher sharded like
    the student's parameters and never donated, the frozen weights (``steps.replicated_frozen_params``)
    replicated."""
    fn = functools.partial(distill_step, graphdef=graphdef, tx=tx, cfg=cfg)
    rep = parallel.replicated(state_shardings.step.mesh)
    return jax.jit(fn, in_shardings=(state_shardings, state_shardings.params, batch_sharding, rep),
                   out_shardings=(state_shardings, None), donate_argnums=(0,))
