"""StreamDiT: an adaLN DiT with a time-varying (per-frame) embedding and shifted 3D window attention (Sec. 4.1).

The velocity model takes its conditioning as input: text embeddings and mask from any ``models.text.TextEncoder``.
Data flow of ``StreamDiT.__call__`` (latents [b, F, H, W, C], per-frame tau [b, F], text embeddings [b, L, Dt]):
patchify (1 x ph x pw) -> tokens [b, F, H', W', D]; tau -> one embedding per frame [b, F, D] (broadcast over that
frame's tokens) -> every block's adaLN shift/scale/gate; blocks as (unshifted, shifted) window-attention pairs, stacked
with nnx.vmap and run with jax.lax.scan; modulated final layer; unpatchify -> velocity [b, F, H, W, C] (Eq. 5-6's u).
"""
from __future__ import annotations

import math

import einops
import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax import parallel
from streamdit_jax.models.attention import CrossAttention, WindowSelfAttention, dense, rope_3d
from streamdit_jax.models.config import ModelConfig

TOKENS = ("batch", "frames_act", None, None, "embed_act")  # activation layout [b, F, H, W, D]
ZEROS = nnx.initializers.zeros_init()


def timestep_embedding(tau: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """Sinusoidal features of ``1000 * tau`` (DiT convention); tau [...] -> [..., dim] float32."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = 1000.0 * tau.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def modulate(x, shift, scale):
    return x * (1.0 + scale) + shift


class TimeEmbedding(nnx.Module):
    """Per-frame time embedding: tau [b, F] -> [b, F, D]. Separable along frames by construction (Sec. 4.1)."""

    def __init__(self, cfg: ModelConfig, *, rngs):
        kw = dict(rngs=rngs, dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype)
        self.freq_dim = cfg.time_freq_dim
        self.fc1 = dense(cfg.time_freq_dim, cfg.width, ("freq", "mlp"), **kw)
        self.fc2 = dense(cfg.width, cfg.width, ("mlp", "embed"), **kw)

    def __call__(self, tau):
        return self.fc2(jax.nn.silu(self.fc1(timestep_embedding(tau, self.freq_dim))))


class DiTBlock(nnx.Module):
    """adaLN-Zero block: window self-attention, cross-attention to text, MLP; modulated per frame."""

    def __init__(self, cfg: ModelConfig, *, shifted: bool, rngs):
        d, dt, pd = cfg.width, cfg.compute_dtype, cfg.params_dtype
        kw = dict(rngs=rngs, dtype=dt, param_dtype=pd)
        hidden = int(cfg.mlp_ratio * d)
        self.norm1 = nnx.LayerNorm(d, use_scale=False, use_bias=False, rngs=rngs, dtype=dt, param_dtype=pd)
        self.attn = WindowSelfAttention(d, cfg.num_heads, cfg.window, shifted=shifted,
                                        implementation=cfg.attention_impl, **kw)
        self.norm2 = nnx.LayerNorm(d, rngs=rngs, dtype=dt, param_dtype=pd)
        self.cross = CrossAttention(d, cfg.text.width, cfg.num_heads, **kw)
        self.norm3 = nnx.LayerNorm(d, use_scale=False, use_bias=False, rngs=rngs, dtype=dt, param_dtype=pd)
        self.fc1 = dense(d, hidden, ("embed", "mlp"), **kw)
        self.fc2 = dense(hidden, d, ("mlp", "embed"), **kw)
        # adaLN-Zero: modulations start at zero, so the gated self-attention and MLP branches start switched off
        # (the cross-attention branch is ungated, as in PixArt-style DiTs: text reaches the tokens from step 0).
        self.ada = dense(d, 6 * d, ("embed", "mlp"), kernel_init=ZEROS, **kw)

    def modulation(self, temb: jax.Array) -> jax.Array:
        """temb [b, F, D] -> [b, F, 6, D]: (shift, scale, gate) for attention and for the MLP, per frame."""
        m = self.ada(jax.nn.silu(temb))
        return m.reshape(m.shape[:-1] + (6, -1))

    def __call__(self, x, temb, text, text_mask, rope):
        mods = self.modulation(temb)[:, :, None, None]  # [b, F, 1, 1, 6, D]: broadcast over the frame's tokens
        sh1, sc1, g1, sh2, sc2, g2 = (mods[..., i, :] for i in range(6))
        x = x + g1 * self.attn(modulate(self.norm1(x), sh1, sc1), rope)
        x = x + self.cross(self.norm2(x), text, text_mask)
        x = x + g2 * self.fc2(jax.nn.gelu(self.fc1(modulate(self.norm3(x), sh2, sc2))))
        return parallel.constrain(x, TOKENS)


class BlockPair(nnx.Module):
    """An unshifted window-attention block followed by a shifted one (the unit that is scanned)."""

    def __init__(self, cfg: ModelConfig, *, rngs):
        self.plain = DiTBlock(cfg, shifted=False, rngs=rngs)
        self.shifted = DiTBlock(cfg, shifted=True, rngs=rngs)

    def __call__(self, x, temb, text, text_mask, rope):
        return self.shifted(self.plain(x, temb, text, text_mask, rope), temb, text, text_mask, rope)


class FinalLayer(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs):
        d, dt, pd = cfg.width, cfg.compute_dtype, cfg.params_dtype
        kw = dict(rngs=rngs, dtype=dt, param_dtype=pd)
        self.norm = nnx.LayerNorm(d, use_scale=False, use_bias=False, rngs=rngs, dtype=dt, param_dtype=pd)
        self.ada = dense(d, 2 * d, ("embed", "mlp"), kernel_init=ZEROS, **kw)
        self.out = dense(d, cfg.patch_dim, ("embed", "patch"), kernel_init=ZEROS, **kw)

    def __call__(self, x, temb):
        m = self.ada(jax.nn.silu(temb))[:, :, None, None]
        shift, scale = m[..., : x.shape[-1]], m[..., x.shape[-1]:]
        return self.out(modulate(self.norm(x), shift, scale))


def patchify(x: jax.Array, patch) -> jax.Array:
    """Latents [b, f, H, W, C] -> patch tokens [b, f, H/ph, W/pw, ph pw C] (the frame axis is never patched)."""
    _, ph, pw = patch
    return einops.rearrange(x, "b f (h ph) (w pw) c -> b f h w (ph pw c)", ph=ph, pw=pw)


def unpatchify(x: jax.Array, patch) -> jax.Array:
    """The inverse of ``patchify``."""
    _, ph, pw = patch
    return einops.rearrange(x, "b f h w (ph pw c) -> b f (h ph) (w pw) c", ph=ph, pw=pw)


def check_latents_and_tau(cfg: ModelConfig, x: jax.Array, tau: jax.Array) -> None:
    """ValueError unless x is [batch, F, H, W, latent_channels] and tau per frame [batch, F]."""
    if x.ndim != 5 or x.shape[-1] != cfg.latent_channels:
        raise ValueError(f"latents must be [batch, F, H, W, C={cfg.latent_channels}]; got shape {x.shape}")
    if tau.shape != x.shape[:2]:
        raise ValueError(f"tau must be per frame with shape {x.shape[:2]}; got {tau.shape}")


def stacked_layers(make, count: int, rngs: nnx.Rngs):
    """``count`` modules ``make(rngs)`` with their parameters stacked on a leading "layers" axis (one random stream
    split per layer), for a lax.scan over the layers."""

    @nnx.split_rngs(splits=count)
    @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def build(rngs):
        return make(rngs)

    return build(rngs)


def scan_layers(layers, h: jax.Array, apply, remat: bool = False) -> jax.Array:
    """``h`` through every layer of ``layers`` (``stacked_layers``) in order, ``apply(layer, h) -> h``. A plain
    lax.scan over the split layer states rather than nnx.scan: it nests inside other jax transforms (the buffer step's
    scan over micro steps, distillation) without NNX trace-level checks. ``remat``: each layer recomputed in the
    backward pass."""
    layer_def, states = nnx.split(layers)

    def body(h, state):
        return apply(nnx.merge(layer_def, state), h), None

    if remat:
        body = jax.checkpoint(body, prevent_cse=False)
    return jax.lax.scan(body, h, states)[0]


class PatchTokens:
    """Patchify / unpatchify by the model config's ``patch`` (a mixin of the velocity models)."""

    def patchify(self, x: jax.Array) -> jax.Array:
        return patchify(x, self.cfg.patch)

    def unpatchify(self, x: jax.Array) -> jax.Array:
        return unpatchify(x, self.cfg.patch)


class StreamDiT(PatchTokens, nnx.Module):
    """The StreamDiT velocity model u(X_tau, P, tau); P arrives as text embeddings + mask (``__call__``)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.patch_embed = dense(cfg.patch_dim, cfg.width, ("patch", "embed"), rngs=rngs, dtype=cfg.compute_dtype,
                                 param_dtype=cfg.params_dtype)
        self.time_embed = TimeEmbedding(cfg, rngs=rngs)
        if cfg.pooled_text:
            self.text_pool = dense(cfg.text.width, cfg.width, ("text_embed", "embed"), rngs=rngs,
                                   dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype)

        self.blocks = stacked_layers(lambda r: BlockPair(cfg, rngs=r), cfg.depth // 2, rngs)
        self.final = FinalLayer(cfg, rngs=rngs)

    def __call__(self, x: jax.Array, tau: jax.Array, text: jax.Array, text_mask: jax.Array) -> jax.Array:
        """Velocity for latents x [b, F, H, W, C] at per-frame noise levels tau [b, F] (Eq. 5-6)."""
        cfg = self.cfg
        check_latents_and_tau(cfg, x, tau)
        grid = cfg.token_grid(x.shape[1:])
        cfg.resolved_window(grid)  # validates that the window tiles this grid
        rope = tuple(jnp.asarray(t) for t in rope_3d(grid, cfg.head_dim, cfg.rope_theta))
        h = parallel.constrain(self.patch_embed(self.patchify(x.astype(cfg.compute_dtype))), TOKENS)
        temb = self.time_embed(tau)  # [b, F, D]
        text = text.astype(cfg.compute_dtype)
        if cfg.pooled_text:  # masked mean over the prompt's tokens -> every frame's adaLN input
            m = text_mask.astype(text.dtype)[..., None]
            pooled = jnp.sum(text * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
            temb = temb + self.text_pool(pooled)[:, None, :]

        h = scan_layers(self.blocks, h, lambda pair, h: pair(h, temb, text, text_mask, rope), cfg.remat)
        return self.unpatchify(self.final(h, temb)).astype(jnp.float32)


def forward_flops(cfg: ModelConfig, latent_shape, text_len: int | None = None, batch: int = 1) -> float:
    """Analytic FLOPs of one StreamDiT forward pass (matmuls and attention; 2 FLOPs per multiply-add).

    The text encoder is excluded: it runs only when the prompt changes.
    """
    text_len = cfg.text.max_len if text_len is None else text_len
    grid = cfg.token_grid(latent_shape)
    window = cfg.resolved_window(grid)
    tokens, frames, d, dt = math.prod(grid), grid[0], cfg.width, cfg.text.width
    hidden = int(cfg.mlp_ratio * d)
    per_block = (2 * tokens * d * d * 4  # q, k, v, out
                 + 4 * tokens * math.prod(window) * d  # window attention scores + values
                 + 2 * tokens * d * d * 2 + 2 * text_len * dt * d * 2  # cross q/out, cross k/v
                 + 4 * tokens * text_len * d  # cross scores + values
                 + 2 * tokens * d * hidden * 2  # MLP
                 + 2 * frames * d * 6 * d)  # adaLN (per frame)
    outer = 2 * tokens * cfg.patch_dim * d * 2 + 2 * frames * (cfg.time_freq_dim * d + d * d + 2 * d * d)
    return float(batch * (cfg.depth * per_block + outer))
