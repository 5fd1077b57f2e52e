"""Wan2.1's video DiT (Wan Team, 2025, "Wan: Open and Advanced Large-Scale Video Generative Models"; diffusers'
``WanTransformer3DModel``) in Flax NNX, behind StreamDiT's velocity-model interface.

``WanTransformer.__call__(x [b, F, H, W, C], tau [b, F], text [b, L, Dt], text_mask [b, L])`` returns the velocity
in OUR flow convention (STREAMDIT.md Sec. 1-2, paper Eq. 1-6): tau = 0 is noise X0, tau = 1 is data X1, X_tau =
tau X1 + (1 - tau) X0 (sigma_min aside) and u = X1 - X0. Wan / diffusers count the other way: sigma = 1 - tau,
x_t = (1 - sigma) x0 + sigma noise, timestep = 1000 sigma, and the network predicts noise - x0. Hence the network
sees ``wan_timestep(tau) = 1000 (1 - tau)`` and its output is negated (``velocity = -F``). Latents are
channels-last here, [b, C, F, H, W] in diffusers.

Data flow (diffusers' names in brackets): patchify (1 x 2 x 2, the Conv3d [patch_embedding] as a linear map on
flattened patches) -> tokens [b, F, H', W', D]; per-frame time: sinusoidal features of wan_timestep(tau) (cos then
sin, [timesteps_proj]) -> Linear, SiLU, Linear = temb [time_embedder] -> SiLU, Linear to 6 D [time_proj], one set
for every block; text -> Linear, GELU(tanh), Linear to D [text_embedder]; blocks (stacked with nnx.vmap, run with
jax.lax.scan): LayerNorm (no affine) modulated by (block table [scale_shift_table] + time projection) -> self-attention
with RMSNorm over the whole inner dimension on q and k [norm_q, norm_k: "rms_norm_across_heads"] and 3D RoPE ->
gated residual; affine LayerNorm [norm2] -> cross-attention to the embedded text (q/k RMSNorm again) -> residual;
modulated LayerNorm -> Linear, GELU(tanh), Linear [ffn] -> gated residual; output LayerNorm modulated by (head
table + temb) [norm_out, scale_shift_table] -> Linear [proj_out] -> unpatchify.

Per-frame time (StreamDiT Sec. 4.1): tau [b, F] gives every latent frame its own temb and modulation, broadcast over
that frame's tokens. This is diffusers' per-token timestep path (``timestep`` of shape [b, seq_len], Wan2.2's) with
each frame's tokens sharing their frame's timestep; with equal taus it is the per-sample path exactly. The temporal
patch must therefore be 1 (``ModelConfig`` enforces it).

RoPE positions are relative to the model's input: frame 0 of ``x`` is temporal position 0 and the last is F - 1,
whatever the stream's absolute frame count; there is no position input at all. A stream runs forever, so absolute
positions would grow without bound: past the range Wan was trained on (81 frames = 21 latent frames) and past its
RoPE table (diffusers precomputes 1024 positions), and with float32 angles of position x frequency losing precision
as the stream ages (attention scores depend only on position differences in exact arithmetic, not in float32), so the
same buffer would give a different velocity at frame 10^6 than at frame 0. Buffer-relative positions stay in
[0, F - 1], the computation is identical at every macro step, and the distances between frames in the buffer, all that
RoPE attention sees, are exactly those of a clip.

Text mask: Wan2.1 pads umT5's states to 512 positions with zeros past the prompt and attends to all 512 (no mask;
the zero rows become one learned vector after the text embedder). ``ModelConfig.attend_text_padding=True`` does
exactly that (``text_mask`` ignored; feed states zeroed past the prompt, as ``models.t5.T5TextEncoder`` gives);
False masks the keys past the prompt, as StreamDiT's cross-attention (``models.attention.CrossAttention``) does.
With a mask of all ones the two are the same computation.

Precision: LayerNorm statistics, the modulation arithmetic, the time embedding and the gated residual sums run in
float32 whatever the compute dtype (diffusers keeps time_embedder, scale_shift_table and norm1-3 in float32).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax import parallel
from streamdit_jax.models.attention import attend, dense, sharded_init
from streamdit_jax.models.config import ModelConfig, is_chunked
from streamdit_jax.models.dit import PatchTokens, check_latents_and_tau, scan_layers, stacked_layers

EPS = 1e-6  # Wan2.1's eps of every LayerNorm and RMSNorm
TOKENS = ("batch", "frames_act", None, None, "embed_act")  # activation layout [b, F, H, W, D] (as models.dit)
F32 = jnp.float32


def wan_timestep(tau: jax.Array) -> jax.Array:
    """Wan's timestep of our noise level: sigma = 1 - tau, timestep = 1000 sigma (tau = 0, pure noise: 1000)."""
    return 1000.0 * (1.0 - tau.astype(F32))


def sinusoidal_features(timestep: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """diffusers' Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0): [...] -> [..., dim] = (cos, sin) of
    timestep * max_period^(-i / (dim/2)), i < dim/2, in float32."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=F32) / half)
    args = timestep.astype(F32)[..., None] * freqs
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def modulate(x, shift, scale):
    return x * (1.0 + scale) + shift


def layer_norm(x: jax.Array, eps: float = EPS) -> jax.Array:
    """LayerNorm without affine parameters, in float32 (diffusers' FP32LayerNorm(elementwise_affine=False))."""
    x = x.astype(F32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


# ----------------------------------------------------------------------------------------------------------- RoPE
def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of a head given to the (frame, height, width) axes: Wan splits h = w = 2 (head_dim // 6) and gives
    the rest to time (head_dim 128: 44 / 42 / 42; 16: 8 / 4 / 4)."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def token_positions(grid: tuple[int, int, int]) -> np.ndarray:
    """Integer (frame, row, column) position of every token of a [F, H, W] grid: [F, H, W, 3]. Frame positions are
    relative to the model's input (0 .. F - 1): see the module docstring."""
    return np.stack(np.meshgrid(*(np.arange(n) for n in grid), indexing="ij"), axis=-1)


def rope_tables(grid: tuple[int, int, int], head_dim: int, theta: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """cos / sin [F, H, W, head_dim / 2] of Wan's 3D RoPE: rotation pair j of an axis with d channels turns by
    position * theta^(-2j / d); the pairs of time come first, then height, then width (angles in float64, as
    diffusers, then float32)."""
    positions = token_positions(grid).astype(np.float64)
    angles = []
    for axis, dim in enumerate(rope_axis_dims(head_dim)):
        freqs = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
        angles.append(positions[..., axis, None] * freqs)
    ang = np.concatenate(angles, axis=-1)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotates x [b, F, H, W, heads, head_dim] by the per-token angles; channels (2j, 2j + 1) form pair j
    (interleaved, Wan's complex-number convention), in float32."""
    pairs = x.astype(F32).reshape(x.shape[:-1] + (-1, 2))
    x1, x2 = pairs[..., 0], pairs[..., 1]
    c, s = cos[:, :, :, None, :], sin[:, :, :, None, :]
    return jnp.stack([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1).reshape(x.shape).astype(x.dtype)


# --------------------------------------------------------------------------------------------------------- layers
def rms_norm(width: int, names, *, rngs, param_dtype) -> nnx.RMSNorm:
    """RMSNorm over ``width`` channels with a learned scale, statistics in float32."""
    return nnx.RMSNorm(width, epsilon=EPS, dtype=F32, param_dtype=param_dtype, rngs=rngs,
                       scale_init=sharded_init(nnx.initializers.ones_init(), names))


def table(rows: int, width: int, *, rngs, param_dtype) -> nnx.Param:
    """A learned modulation table [rows, width] added to the time embedding (Wan's init: N(0, 1 / width))."""
    init = sharded_init(nnx.initializers.normal(width ** -0.5), (None, "embed"))
    return nnx.Param(init(rngs.params(), (rows, width), param_dtype))


class WanAttention(nnx.Module):
    """Wan's attention: q, k, v, out projections with biases and RMSNorm of q and k over all heads together; 3D RoPE
    on self-attention; the keys and values of cross-attention come from the embedded text (width D too)."""

    def __init__(self, cfg: ModelConfig, *, cross: bool, rngs: nnx.Rngs):
        d = cfg.width
        kw = dict(rngs=rngs, dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype)
        self.num_heads, self.head_dim, self.cross = cfg.num_heads, cfg.head_dim, cross
        # cross-attention's masks: the XLA path (as models.attention), or its chunked form when that is asked for
        self.implementation = None if cross and not is_chunked(cfg.attention_impl) else cfg.attention_impl
        self.attend_padding = cfg.attend_text_padding
        self.q = dense(d, d, ("embed", "heads"), **kw)
        self.k = dense(d, d, ("embed", "heads"), **kw)
        self.v = dense(d, d, ("embed", "heads"), **kw)
        self.out = dense(d, d, ("heads", "embed"), **kw)
        self.q_norm = rms_norm(d, ("heads",), rngs=rngs, param_dtype=cfg.params_dtype)
        self.k_norm = rms_norm(d, ("heads",), rngs=rngs, param_dtype=cfg.params_dtype)

    def _heads(self, t: jax.Array) -> jax.Array:
        return t.reshape(t.shape[:-1] + (self.num_heads, self.head_dim))

    def __call__(self, x: jax.Array, rope=None, context=None, context_mask=None) -> jax.Array:
        """x [b, F, H, W, D]; self-attention: rope = cos / sin [F, H, W, head_dim / 2]; cross-attention: context
        [b, L, D] (embedded text) and its mask [b, L]. Returns [b, F, H, W, D]."""
        shape, dt = x.shape, x.dtype
        kv = x if context is None else context
        q = self._heads(self.q_norm(self.q(x)).astype(dt))
        k = self._heads(self.k_norm(self.k(kv)).astype(dt))
        v = self._heads(self.v(kv))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        flat = lambda t: t.reshape((t.shape[0], -1) + t.shape[-2:])  # [b, tokens, heads, head_dim]
        mask = None
        if context is not None and not self.attend_padding:
            mask = context_mask.astype(bool)[:, None, None, :]  # [b, 1, 1, L] over (heads, q, k)
        o = attend(flat(q), flat(k), flat(v), mask=mask, implementation=self.implementation)
        return self.out(o.reshape(shape[:-1] + (-1,)))


class WanBlock(nnx.Module):
    """One Wan transformer block; ``modulation`` [6, D] is its scale_shift_table (shift, scale, gate of
    self-attention, then of the feed-forward)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        d, pd = cfg.width, cfg.params_dtype
        kw = dict(rngs=rngs, dtype=cfg.compute_dtype, param_dtype=pd)
        self.attn = WanAttention(cfg, cross=False, rngs=rngs)
        # Wan's cross_attn_norm: an affine LayerNorm before cross-attention (original checkpoints call it norm3)
        self.cross_norm = nnx.LayerNorm(d, epsilon=EPS, dtype=F32, param_dtype=pd, rngs=rngs, use_fast_variance=False,
                                        scale_init=sharded_init(nnx.initializers.ones_init(), ("embed",)),
                                        bias_init=sharded_init(nnx.initializers.zeros_init(), ("embed",)))
        self.cross = WanAttention(cfg, cross=True, rngs=rngs)
        self.fc1 = dense(d, cfg.hidden_dim, ("embed", "mlp"), **kw)
        self.fc2 = dense(cfg.hidden_dim, d, ("mlp", "embed"), **kw)
        self.modulation = table(6, d, rngs=rngs, param_dtype=pd)

    def __call__(self, x, time_mods, text, text_mask, rope):
        """x [b, F, H, W, D]; time_mods [b, F, 6, D] float32 (the shared time projection, per frame)."""
        dt = x.dtype
        mods = (self.modulation[...].astype(F32) + time_mods)[:, :, None, None]  # [b, F, 1, 1, 6, D]
        shift1, scale1, gate1, shift2, scale2, gate2 = (mods[..., i, :] for i in range(6))
        h = self.attn(modulate(layer_norm(x), shift1, scale1).astype(dt), rope=rope)
        x = (x.astype(F32) + h.astype(F32) * gate1).astype(dt)
        x = x + self.cross(self.cross_norm(x).astype(dt), context=text, context_mask=text_mask)
        h = modulate(layer_norm(x), shift2, scale2).astype(dt)
        h = self.fc2(jax.nn.gelu(self.fc1(h), approximate=True))
        x = (x.astype(F32) + h.astype(F32) * gate2).astype(dt)
        return parallel.constrain(x, TOKENS)


class WanTimeEmbedding(nnx.Module):
    """tau [b, F] -> (temb [b, F, D], the blocks' shared modulation [b, F, 6, D]), float32 throughout."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        kw = dict(rngs=rngs, dtype=F32, param_dtype=cfg.params_dtype)
        self.freq_dim = cfg.time_freq_dim
        self.fc1 = dense(cfg.time_freq_dim, cfg.width, ("freq", "mlp"), **kw)
        self.fc2 = dense(cfg.width, cfg.width, ("mlp", "embed"), **kw)
        self.proj = dense(cfg.width, 6 * cfg.width, ("embed", "mlp"), **kw)

    def __call__(self, tau: jax.Array) -> tuple[jax.Array, jax.Array]:
        temb = self.fc2(jax.nn.silu(self.fc1(sinusoidal_features(wan_timestep(tau), self.freq_dim))))
        mods = self.proj(jax.nn.silu(temb))
        return temb, mods.reshape(mods.shape[:-1] + (6, -1))


class WanTextEmbedding(nnx.Module):
    """Text states [b, L, text_dim] -> [b, L, D]: Linear, GELU (tanh), Linear (PixArt-alpha's caption projection)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        kw = dict(rngs=rngs, dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype)
        self.fc1 = dense(cfg.text.width, cfg.width, ("text_embed", "mlp"), **kw)
        self.fc2 = dense(cfg.width, cfg.width, ("mlp", "embed"), **kw)

    def __call__(self, text: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(text), approximate=True))


class WanHead(nnx.Module):
    """Output LayerNorm modulated by (``table`` [2, D] = shift, scale) + temb, then the linear map to patches (zero
    at init, as Wan's own initialisation)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.table = table(2, cfg.width, rngs=rngs, param_dtype=cfg.params_dtype)
        self.out = dense(cfg.width, cfg.patch_dim, ("embed", "patch"), rngs=rngs, dtype=cfg.compute_dtype,
                         param_dtype=cfg.params_dtype, kernel_init=nnx.initializers.zeros_init())

    def __call__(self, x: jax.Array, temb: jax.Array) -> jax.Array:
        m = (self.table[...].astype(F32) + temb[:, :, None, :])[:, :, None, None]  # [b, F, 1, 1, 2, D]
        return self.out(modulate(layer_norm(x), m[..., 0, :], m[..., 1, :]).astype(x.dtype))


class WanTransformer(PatchTokens, nnx.Module):
    """Wan2.1's DiT as a StreamDiT velocity model u(X_tau, P, tau) (``__call__``; conventions: module docstring)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        if cfg.arch != "wan":
            raise ValueError(f"WanTransformer needs model.arch='wan', got {cfg.arch!r}")
        self.cfg = cfg
        self.patch_embed = dense(cfg.patch_dim, cfg.width, ("patch", "embed"), rngs=rngs, dtype=cfg.compute_dtype,
                                 param_dtype=cfg.params_dtype)
        self.time_embed = WanTimeEmbedding(cfg, rngs=rngs)
        self.text_embed = WanTextEmbedding(cfg, rngs=rngs)

        self.blocks = stacked_layers(lambda r: WanBlock(cfg, rngs=r), cfg.depth, rngs)
        self.head = WanHead(cfg, rngs=rngs)

    def wan_output(self, x: jax.Array, tau: jax.Array, text: jax.Array, text_mask: jax.Array) -> jax.Array:
        """Wan's own prediction (noise - x0, channels-last) for latents x [b, F, H, W, C] at per-frame tau [b, F]."""
        cfg = self.cfg
        check_latents_and_tau(cfg, x, tau)
        grid = cfg.token_grid(x.shape[1:])
        rope = tuple(jnp.asarray(t) for t in rope_tables(grid, cfg.head_dim, cfg.rope_theta))
        h = parallel.constrain(self.patch_embed(self.patchify(x.astype(cfg.compute_dtype))), TOKENS)
        temb, time_mods = self.time_embed(tau)  # [b, F, D], [b, F, 6, D]
        text = self.text_embed(text.astype(cfg.compute_dtype))

        h = scan_layers(self.blocks, h, lambda block, h: block(h, time_mods, text, text_mask, rope), cfg.remat)
        return self.unpatchify(self.head(h, temb)).astype(F32)

    def __call__(self, x: jax.Array, tau: jax.Array, text: jax.Array, text_mask: jax.Array) -> jax.Array:
        """Velocity u = X1 - X0 (our convention) for latents x [b, F, H, W, C] at per-frame tau [b, F]: minus Wan's
        noise - x0 prediction."""
        return -self.wan_output(x, tau, text, text_mask)


def forward_flops(cfg: ModelConfig, latent_shape, text_len: int | None = None, batch: int = 1) -> float:
    """Analytic FLOPs of one WanTransformer forward pass (matmuls and attention; 2 FLOPs per multiply-add)."""
    text_len = cfg.text.max_len if text_len is None else text_len
    grid = cfg.token_grid(latent_shape)
    tokens, frames, d = math.prod(grid), grid[0], cfg.width
    per_block = (2 * tokens * d * d * 4 + 4 * tokens * tokens * d  # self-attention projections, scores + values
                 + 2 * tokens * d * d * 2 + 2 * text_len * d * d * 2 + 4 * tokens * text_len * d  # cross-attention
                 + 2 * tokens * d * cfg.hidden_dim * 2)  # feed-forward
    outer = (2 * tokens * cfg.patch_dim * d * 2 + 2 * text_len * (cfg.text.width * d + d * d)
             + 2 * frames * (cfg.time_freq_dim * d + d * d + 6 * d * d))
    return float(batch * (cfg.depth * per_block + outer))
