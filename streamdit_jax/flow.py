"""Flow-matching maths for (buffered) flow matching: paper Eq. 1-6.

Conventions (see ../shared/STREAMDIT.md section 1-2):
- time/noise level ``tau`` in [0, 1]; ``tau = 0`` is pure noise ``X0 ~ N(0, 1)``, ``tau = 1`` is data ``X1``;
- latents are laid out ``[batch, frames, height, width, channels]``;
- ``tau`` is a per-frame vector ``[batch, frames]`` (buffered flow matching, Eq. 5) and broadcasts over each
  frame's spatial positions and channels. A scalar or ``[batch]`` tau is the plain flow-matching case (Eq. 2).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

SIGMA_MIN = 1e-5  # not given by the paper; MovieGen's value (STREAMDIT.md section 1).


def _per_frame(tau: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """Broadcasts ``tau`` of shape [], [batch] or [batch, frames] against ``x`` [batch, frames, ...]."""
    tau = jnp.asarray(tau, dtype=x.dtype)
    if tau.ndim == 1:  # one tau per example
        if tau.shape[0] != x.shape[0]:
            raise ValueError(f"a 1-D tau is one level per example: shape ({x.shape[0]},) for x of shape {x.shape}, "
                             f"got {tau.shape}; pass per-frame levels as [batch, frames]")
        tau = tau[:, None]
    if tau.ndim > 2:
        raise ValueError(f"tau must have shape [], [batch] or [batch, frames]; got {tau.shape}")
    return tau.reshape(tau.shape + (1,) * (x.ndim - tau.ndim))


def interpolate(x1: jnp.ndarray, x0: jnp.ndarray, tau: jnp.ndarray, sigma_min: float = SIGMA_MIN) -> jnp.ndarray:
    """Eq. 2 / Eq. 5: ``X_tau = tau o X1 + (1 - (1 - sigma_min) tau) o X0`` with ONE X0 for the whole buffer."""
    t = _per_frame(tau, x1)
    return t * x1 + (1.0 - (1.0 - sigma_min) * t) * x0


def velocity_target(x1: jnp.ndarray, x0: jnp.ndarray, sigma_min: float = SIGMA_MIN) -> jnp.ndarray:
    """Eq. 3: the straight-path velocity ``V = X1 - (1 - sigma_min) X0`` (independent of tau)."""
    return x1 - (1.0 - sigma_min) * x0


def euler_step(x: jnp.ndarray, velocity: jnp.ndarray, dtau: jnp.ndarray) -> jnp.ndarray:
    """Eq. 6: ``X_{tau + dtau} = X_tau + u(X_tau, P, tau) o dtau`` with a per-frame ``dtau``."""
    return x + velocity * _per_frame(dtau, x)


def flow_matching_loss(prediction: jnp.ndarray, target: jnp.ndarray, frame_mask: jnp.ndarray) -> jnp.ndarray:
    """Eq. 4 with a per-frame mask: mean squared error over the frames where ``frame_mask`` is 1.

    Args:
      prediction, target: [batch, frames, ...].
      frame_mask: [frames] or [batch, frames]; 0 for frames without loss (the K clean reference frames).
    Returns:
      per-example loss, shape [batch]: the mean over masked-in elements of each example.
    """
    mask = jnp.broadcast_to(jnp.asarray(frame_mask, jnp.float32), prediction.shape[:2])
    sq = jnp.square(prediction.astype(jnp.float32) - target.astype(jnp.float32))
    per_frame = jnp.mean(sq.reshape(sq.shape[:2] + (-1,)), axis=-1)  # [batch, frames]
    return jnp.sum(per_frame * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)


def oracle_velocity(x_tau: jnp.ndarray, tau: jnp.ndarray, x1: jnp.ndarray, sigma_min: float = SIGMA_MIN) -> jnp.ndarray:
    """The exact velocity field of the linear path towards a KNOWN target ``x1`` (per frame).

    ``V(X_t, t) = X1 - (1 - sigma_min) (X_t - t X1) / (1 - (1 - sigma_min) t)``: recover X0 from X_t, then Eq. 3.
    Euler integration of this field is exact for any step sizes, which makes it the oracle for sampler tests: it
    checks frame order and that each frame ends at tau = 1, not the levels in between (one step lands anywhere).
    """
    t = _per_frame(tau, x_tau)
    x0 = (x_tau - t * x1) / (1.0 - (1.0 - sigma_min) * t)
    return x1 - (1.0 - sigma_min) * x0


def gaussian_noise(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """X0 ~ N(0, 1) of ``shape``, drawn flat and reshaped.

    With partitionable threefry (jax's default), XLA:CPU took ~26 s to compile ``jax.random.normal`` of a 5-D latent
    shape and 0.3 s for the same number of values drawn flat (jax 0.10.2); the distribution is the same.
    """
    return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)
