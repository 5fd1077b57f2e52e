"""Attention for StreamDiT (Sec. 4.1): 3D (shifted) window self-attention with 3D RoPE and QK-norm, and
cross-attention to text tokens.

Window attention splits the [F, H, W] token grid into non-overlapping [Fw, Hw, Ww] windows and attends inside each.
Every other layer shifts the windows by half a window with cyclic wrap-around (Swin style; ours: no mask on the
wrapped region, so the frames at both ends of the buffer meet in the shifted windows). RoPE is applied with the
tokens' true grid positions before any shift, so relative positions stay correct inside every window.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import einops
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.models.config import chunked_block, is_chunked


def sharded_init(init, names):
    """Initializer annotated with logical axis names; sharding is applied by parallel.state_shardings, not eagerly."""
    return nnx.with_partitioning(init, names, eager_sharding=False)


def dense(din: int, dout: int, names, *, rngs, dtype=jnp.float32, param_dtype=jnp.float32, use_bias=True,
          kernel_init=nnx.initializers.xavier_uniform()) -> nnx.Linear:
    return nnx.Linear(din, dout, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
                      kernel_init=sharded_init(kernel_init, names),
                      bias_init=sharded_init(nnx.initializers.zeros_init(), names[1:]))


# ----------------------------------------------------------------------------------------------------------- RoPE
def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Splits the head dimension's rotation pairs among the (frame, height, width) axes."""
    pairs = head_dim // 2
    hw = pairs // 3
    return pairs - 2 * hw, hw, hw


def rope_3d(grid: tuple[int, int, int], head_dim: int, theta: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin tables of shape [F, H, W, head_dim/2] for 3D rotary position embedding (ours, Sec. 4.1)."""
    angles = []
    for size, pairs, axis in zip(grid, rope_axis_dims(head_dim), range(3)):
        freqs = theta ** (-np.arange(pairs) / max(pairs, 1))
        pos = np.arange(size, dtype=np.float64)
        ang = pos[:, None] * freqs[None, :]  # [size, pairs]
        shape = [1, 1, 1, pairs]
        shape[axis] = size
        angles.append(np.broadcast_to(ang.reshape(shape), tuple(grid) + (pairs,)))
    ang = np.concatenate(angles, axis=-1)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotates x [b, F, H, W, heads, head_dim] by the per-position angles (half-split convention)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    c, s = cos[:, :, :, None, :], sin[:, :, :, None, :]
    return jnp.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1).astype(x.dtype)


# ------------------------------------------------------------------------------------------------------- windows
def window_partition(x: jax.Array, window) -> jax.Array:
    """[b, F, H, W, ...] -> [b * num_windows, Fw*Hw*Ww, ...]."""
    fw, hw, ww = window
    return einops.rearrange(x, "b (nf fw) (nh hw) (nw ww) ... -> (b nf nh nw) (fw hw ww) ...", fw=fw, hw=hw, ww=ww)


def window_merge(x: jax.Array, window, grid, batch: int) -> jax.Array:
    """Inverse of window_partition."""
    fw, hw, ww = window
    return einops.rearrange(x, "(b nf nh nw) (fw hw ww) ... -> b (nf fw) (nh hw) (nw ww) ...", b=batch,
                            nf=grid[0] // fw, nh=grid[1] // hw, nw=grid[2] // ww, fw=fw, hw=hw, ww=ww)


def shift_sizes(window, grid) -> tuple[int, int, int]:
    """Half-window shift per axis; 0 where the window is the whole axis (a shift there changes nothing)."""
    return tuple(0 if w == g else w // 2 for w, g in zip(window, grid))


CHUNK_QUERIES = 1024  # "chunked" attention's default queries per block


def attend(q, k, v, mask=None, implementation: Optional[str] = None):
    """Scaled dot-product attention on [batch, length, heads, head_dim]: XLA (None | "xla"), cuDNN flash attention
    ("cudnn", GPU only), or XLA in blocks of queries ("chunked[:N]", ``chunked_attention``). ``mask``: boolean,
    broadcastable to [batch, heads, q length, k length]."""
    if is_chunked(implementation):
        return chunked_attention(q, k, v, mask, chunked_block(implementation) or CHUNK_QUERIES)
    impl = None if implementation in (None, "xla") else implementation
    return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=impl)


def query_blocks(length: int, block: int) -> tuple[int, int]:
    """(blocks, queries per block) covering ``length`` queries in blocks of at most ``block``: the fewest blocks,
    or up to twice as many when that many divide ``length`` exactly (no padding), else padded."""
    if length < 1 or block < 1:
        raise ValueError(f"query blocks of length={length} by block={block}: both must be >= 1")
    fewest = -(-length // block)
    exact = next((n for n in range(fewest, 2 * fewest) if length % n == 0), None)
    count = exact or fewest
    return count, -(-length // count)


def chunked_attention(q, k, v, mask=None, block: int = CHUNK_QUERIES):
    """``jax.nn.dot_product_attention`` (XLA) computed for at most ``block`` queries at a time, each block's softmax
    over all keys: the same values and gradients with the scores of one block alive at a time ([b, heads, block,
    k length] float32) instead of all of them. Memory-efficient attention for XLA backends that have no flash kernel
    (the CPU of an AOT compile; on GPU use "cudnn").

    Query i goes to block i mod n (position i // n in it): a strided split, so a query axis sharded over a mesh axis
    (context parallelism) can stay sharded inside every block (XLA's partitioner may split the keys instead: either
    way each device computes its share of every block). Lengths that no block count divides are padded with
    zero queries, dropped from the output. Each block runs under ``jax.checkpoint``: the backward pass recomputes
    its scores instead of keeping every block's (the residuals of a scan)."""
    b, length, heads, dim = q.shape
    count, size = query_blocks(length, block)
    pad = count * size - length
    mask = None if mask is None else jnp.asarray(mask, bool)
    if mask is not None:
        mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)  # [b|1, heads|1, q|1, k]

    def split(x, axis, fill=0):  # [.., count * size, ..] -> [count, .., size, ..]: query j * count + i -> block i
        if pad:  # padded queries attend to every key (a mask of True): a finite softmax, dropped from the output
            x = jnp.pad(x, [(0, pad if a == axis else 0) for a in range(x.ndim)], constant_values=fill)
        x = x.reshape(x.shape[:axis] + (size, count) + x.shape[axis + 1:])
        return jnp.moveaxis(x, axis + 1, 0)

    per_query_mask = mask is not None and mask.shape[2] != 1
    xs = (split(q, 1), split(mask, 2, True) if per_query_mask else None)

    @functools.partial(jax.checkpoint, prevent_cse=False)
    def one(blocks):
        q_block, mask_block = blocks
        return jax.nn.dot_product_attention(q_block, k, v, mask=mask_block if per_query_mask else mask)

    out = jax.lax.map(one, xs)  # [count, b, size, heads, dim]
    out = jnp.moveaxis(out, 0, 2).reshape(b, count * size, heads, dim)
    return out[:, :length] if pad else out


class WindowSelfAttention(nnx.Module):
    """Self-attention inside 3D windows, optionally shifted by half a window (cyclic), with 3D RoPE and QK-norm."""

    def __init__(self, width: int, num_heads: int, window, *, shifted: bool, rngs: nnx.Rngs,
                 dtype=jnp.float32, param_dtype=jnp.float32, implementation: Optional[str] = None):
        self.num_heads, self.head_dim = num_heads, width // num_heads
        self.window, self.shifted, self.implementation = tuple(window), shifted, implementation
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.q = dense(width, width, ("embed", "heads"), **kw)
        self.k = dense(width, width, ("embed", "heads"), **kw)
        self.v = dense(width, width, ("embed", "heads"), **kw)
        self.out = dense(width, width, ("heads", "embed"), **kw)
        self.q_norm = nnx.RMSNorm(self.head_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.k_norm = nnx.RMSNorm(self.head_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array, rope: tuple[jax.Array, jax.Array]) -> jax.Array:
        """x: [b, F, H, W, D] tokens; rope: cos/sin [F, H, W, head_dim/2]. Returns [b, F, H, W, D]."""
        b, grid = x.shape[0], x.shape[1:4]
        window = tuple(g if w in (0, None) else w for w, g in zip(self.window, grid))
        heads = lambda t: t.reshape(t.shape[:-1] + (self.num_heads, self.head_dim))
        q = apply_rope(self.q_norm(heads(self.q(x))), *rope)
        k = apply_rope(self.k_norm(heads(self.k(x))), *rope)
        v = heads(self.v(x))
        shift = shift_sizes(window, grid) if self.shifted else (0, 0, 0)
        roll = lambda t, sign: jnp.roll(t, tuple(sign * s for s in shift), axis=(1, 2, 3)) if any(shift) else t
        q, k, v = (window_partition(roll(t, -1), window) for t in (q, k, v))
        o = attend(q, k, v, implementation=self.implementation)
        o = roll(window_merge(o, window, grid, b), +1)
        return self.out(o.reshape(o.shape[:4] + (-1,)))


class CrossAttention(nnx.Module):
    """Attention from query tokens to key/value tokens with a key padding mask (video -> text, or text -> text)."""

    def __init__(self, width: int, kv_width: int, num_heads: int, *, rngs: nnx.Rngs, kv_names=("text_embed", "heads"),
                 dtype=jnp.float32, param_dtype=jnp.float32, implementation: Optional[str] = None):
        self.num_heads, self.head_dim, self.implementation = num_heads, width // num_heads, implementation
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.q = dense(width, width, ("embed", "heads"), **kw)
        self.k = dense(kv_width, width, kv_names, **kw)
        self.v = dense(kv_width, width, kv_names, **kw)
        self.out = dense(width, width, ("heads", "embed"), **kw)
        self.q_norm = nnx.RMSNorm(self.head_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.k_norm = nnx.RMSNorm(self.head_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array, context: jax.Array, context_mask: jax.Array) -> jax.Array:
        """x: [b, ..., D] queries (any token layout); context: [b, L, Dc]; context_mask: [b, L] (1 = real token)."""
        shape = x.shape
        x = x.reshape(shape[0], -1, shape[-1])
        heads = lambda t: t.reshape(t.shape[:-1] + (self.num_heads, self.head_dim))
        q, k, v = self.q_norm(heads(self.q(x))), self.k_norm(heads(self.k(context))), heads(self.v(context))
        mask = context_mask.astype(bool)[:, None, None, :]  # [b, 1, 1, L] over (heads, q, k)
        o = attend(q, k, v, mask=mask, implementation=None)  # masks: XLA path everywhere (cuDNN wants seqlens)
        return self.out(o.reshape(o.shape[:2] + (-1,))).reshape(shape)


def attention_flops(grid, window, width: int, batch: int = 1) -> float:
    """Analytic FLOPs of the score and value matmuls of one window-attention layer (2*2*T*S*D per window)."""
    tokens = math.prod(grid)
    return 4.0 * batch * tokens * math.prod(window) * width
