"""Pixel conversions shared by training data, autoencoders and streaming: uint8 frames <-> float32 in [-1, 1]."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def frames_to_float(frames: Any) -> Any:
    """uint8 frames in [0, 255] -> float32 in [-1, 1] (numpy in, numpy out; jax in, jax out)."""
    return frames.astype(jnp.float32) / 127.5 - 1.0


def float_to_uint8(x: Any) -> Any:
    """Inverse of `frames_to_float` (clipped and rounded): float in [-1, 1] -> uint8 (numpy in, numpy out; jax in,
    jax out: on device, what leaves it is a quarter of float32's bytes)."""
    xp = jnp if isinstance(x, jax.Array) else np
    return xp.clip(xp.rint((x.astype(xp.float32) + 1.0) * 127.5), 0, 255).astype(xp.uint8)


def float_to_frames(x: Any) -> np.ndarray:
    """`float_to_uint8` on the host: any float array in [-1, 1] -> uint8 numpy frames."""
    return float_to_uint8(np.asarray(x, np.float32))
