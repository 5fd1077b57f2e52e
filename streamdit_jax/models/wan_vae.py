"""Wan2.1's causal video VAE (Wan Team, 2025, "Wan: Open and Advanced Large-Scale Video Generative Models"; diffusers'
``AutoencoderKLWan``) in Flax NNX, read from a diffusers ``vae/`` folder without PyTorch, as a ``VideoAutoencoder``
with a streaming (chunk by chunk) encoder and decoder.

Architecture (channels last here, [b, T, H, W, C]; diffusers is channels first):

- ``CausalConv3d``: a 3D convolution padded spatially on both sides and in time only on the left (causal), with
  zeros at the start of a video. Its input's last frames are its *cache*: a stream carries them to the next chunk
  instead of the zero padding, so chunked and whole-clip passes agree (Wan's ``feat_cache``, CACHE_T = 2 frames).
- ``RMSNorm``: Wan's ``F.normalize`` over channels times sqrt(C) and a learned gamma (no mean, no bias).
- ``ResidualBlock``: norm, SiLU, 3x3x3 conv, norm, SiLU, 3x3x3 conv, plus a 1x1x1 shortcut conv when the width
  changes. ``AttentionBlock``: single-head self-attention over the pixels of each frame separately (norm, 1x1 q/k/v,
  softmax, 1x1 projection, residual): time stays causal.
- ``Resample``: spatial 2x (nearest upsampling + 3x3 conv halving the channels; or a right/bottom zero pad + 3x3
  stride-2 conv) and, in "3d" modes, temporal 2x. Temporal resampling treats a video's first frame on its own: the
  encoder's stride-2 time conv (kernel 3, no padding) passes frame 0 through and maps frames (2j-2, 2j-1, 2j) to
  output j; the decoder's time conv (causal, kernel 3) doubles the channels into two output frames per input frame,
  except frame 0, which passes through, and it sees the video from frame 1 on (zeros before). Hence T = 1 + 4k video
  frames <-> 1 + k latent frames (two temporal stages), and a latent stream's first latent frame decodes to 1 video
  frame, every later one to 4.
- Encoder: conv_in, ``down_blocks`` (per level: residual blocks, then a resample except after the last level; Wan2.1
  has no attention there, ``attn_scales=[]``, and other values are refused), mid block (residual, attention,
  residual), norm, SiLU, conv_out to 2 z_dim channels; ``quant_conv`` (1x1x1); the posterior mean is the first z_dim
  channels.
  Decoder: ``post_quant_conv`` (1x1x1), conv_in, mid block, ``up_blocks`` (num_res_blocks + 1 residual blocks and a
  resample), norm, SiLU, conv_out to RGB, clamped to [-1, 1].

Model-facing latents are normalised as Wan's pipelines do: (mu - latents_mean) / latents_std per channel.

Streaming. ``encode_chunk`` / ``decode_chunk`` run one chunk given the caches of the previous one and return the
new caches (a ``StreamState``): the first chunk of a stream (``StreamState.started`` false, a static field) applies
the first-frame rules above, every later chunk runs the same program on fixed shapes, so a jitted chunk function
compiles twice per stream at most. Chunks: the first of c latent frames is 1 + 4(c-1) video frames, every later one
4c; the concatenated chunk outputs equal one whole-clip ``encode`` / ``decode``. The whole-clip functions are the
same computation from zero caches.

``load_wan_vae`` reads config.json and diffusion_pytorch_model.safetensors (or shards listed by
diffusion_pytorch_model.safetensors.index.json) as diffusers' ``save_pretrained`` writes them, a pipeline root with
a ``vae/`` folder too. Wan2.2's VAE (``is_residual``, ``patch_size``, AvgDown3D / DupUp3D shortcuts) is refused.
Parameters carry logical axis names (``VAE_IN`` / ``VAE_OUT`` channels, spatial and temporal kernel axes
unnamed); ``parallel.LOGICAL_RULES`` maps neither, so the VAE is replicated unless rules for them are given.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax import parallel
from streamdit_jax.models.hf_checkpoint import (CONFIG_FILE, SafetensorsFile, get_leaf, indexed_weight_files, read_config,
                                                 set_leaf)

WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_FILE = "diffusion_pytorch_model.safetensors.index.json"
CLASS_NAME = "AutoencoderKLWan"
VAE_IN, VAE_OUT = "vae_in", "vae_out"  # logical names of a kernel's input and output channel axes
CACHE_FRAMES = 2  # Wan's CACHE_T: a kernel-3 causal conv needs its input's last 2 frames
NORM_EPS = 1e-12  # F.normalize's floor on the channel norm


# ---------------------------------------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class WanVAEConfig:
    """The fields of diffusers' ``AutoencoderKLWan`` config.json that Wan2.1's VAE uses (defaults: Wan2.1's).
    ``dropout`` is read and ignored (inference)."""

    base_dim: int = 96
    decoder_base_dim: Optional[int] = None
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    temperal_downsample: tuple[bool, ...] = (False, True, True)  # diffusers' spelling
    dropout: float = 0.0
    latents_mean: tuple[float, ...] = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                                       0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
    latents_std: tuple[float, ...] = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                      3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)
    in_channels: int = 3
    out_channels: int = 3

    def __post_init__(self):
        for name in ("dim_mult", "attn_scales", "temperal_downsample", "latents_mean", "latents_std"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"WanVAEConfig.{name}={value!r} must be a list")
            object.__setattr__(self, name, tuple(value))
        for name in ("base_dim", "z_dim", "num_res_blocks", "in_channels", "out_channels"):
            _check_positive_int(name, getattr(self, name))
        if self.decoder_base_dim is not None:
            _check_positive_int("decoder_base_dim", self.decoder_base_dim)
        if not self.dim_mult:
            raise ValueError("WanVAEConfig.dim_mult=[] must list at least one level")
        for m in self.dim_mult:
            _check_positive_int("dim_mult", m)
        if len(self.temperal_downsample) != len(self.dim_mult) - 1 or not all(
                isinstance(t, bool) for t in self.temperal_downsample):
            raise ValueError(f"WanVAEConfig.temperal_downsample={list(self.temperal_downsample)!r} must hold "
                             f"len(dim_mult) - 1 = {len(self.dim_mult) - 1} booleans (one per downsampling level)")
        for name in ("latents_mean", "latents_std"):
            values = getattr(self, name)
            if len(values) != self.z_dim or not all(_is_number(v) for v in values):
                raise ValueError(f"WanVAEConfig.{name} has {len(values)} entries, z_dim={self.z_dim} needs as many "
                                 "numbers")
        if min(self.latents_std) <= 0:
            raise ValueError(f"WanVAEConfig.latents_std={list(self.latents_std)} must be > 0 (latents are divided "
                             "by it)")
        if self.attn_scales:
            raise ValueError(f"WanVAEConfig.attn_scales={list(self.attn_scales)!r} is not supported: attention inside "
                             "the encoder's levels (Wan2.1 has none: attn_scales=[]; diffusers' AutoencoderKLWan "
                             "cannot run it either)")
        if not (_is_number(self.dropout) and 0 <= self.dropout < 1):
            raise ValueError(f"WanVAEConfig.dropout={self.dropout!r} must be a number in [0, 1)")

    @property
    def decoder_dim(self) -> int:
        return self.decoder_base_dim or self.base_dim

    @property
    def temporal_factor(self) -> int:
        """Video frames per latent frame after the first: 2 per temporal level."""
        return 2 ** sum(self.temperal_downsample)

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> "WanVAEConfig":
        """From a diffusers config.json's dictionary: the fields above (absent ones take Wan2.1's values), the
        bookkeeping ones (``_class_name``, ``_diffusers_version``, ...) checked or ignored. ValueError naming the
        field and its value for what this implementation does not run: Wan2.2's ``is_residual=true`` and
        ``patch_size``, a ``scale_factor_*`` that disagrees with the architecture, another class."""
        name = d.get("_class_name", CLASS_NAME)
        if name != CLASS_NAME:
            raise ValueError(f"{source}: _class_name={name!r} is not a Wan VAE ({CLASS_NAME!r})")
        if d.get("is_residual", False):
            raise ValueError(f"{source}: is_residual={d['is_residual']!r} is Wan2.2's VAE (residual AvgDown3D / "
                             "DupUp3D blocks), which is not supported; Wan2.1's VAE has is_residual=false")
        if d.get("patch_size") is not None:
            raise ValueError(f"{source}: patch_size={d['patch_size']!r} is Wan2.2's patchified VAE, which is not "
                             "supported; Wan2.1's VAE has patch_size=null")
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        try:
            cfg = cls(**kw)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from None
        for field, implied in (("scale_factor_temporal", cfg.temporal_factor),
                               ("scale_factor_spatial", cfg.spatial_factor)):
            if d.get(field) is not None and d[field] != implied:
                raise ValueError(f"{source}: {field}={d[field]!r} disagrees with the architecture, which implies "
                                 f"{implied} (temperal_downsample={list(cfg.temperal_downsample)}, "
                                 f"dim_mult={list(cfg.dim_mult)})")
        return cfg

    @classmethod
    def from_json(cls, path: str) -> "WanVAEConfig":
        return cls.from_dict(read_config(path, "Wan VAE"), source=path)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"WanVAEConfig.{name}={value!r} must be an integer >= 1")


WAN21_VAE = WanVAEConfig()  # Wan2.1's VAE (Wan-AI/Wan2.1-T2V-*-Diffusers/vae/config.json): 96 wide, z 16


# ----------------------------------------------------------------------------------------------- carried caches
@functools.partial(jax.tree_util.register_dataclass, data_fields=["caches"], meta_fields=["started"])
@dataclasses.dataclass(frozen=True)
class StreamState:
    """What a chunked encode or decode carries from chunk to chunk: ``caches`` {causal conv: its input's last
    frames [b, n, h, w, c]} and ``started`` (static: false before the stream's first chunk, whose first frame is
    treated on its own). Its structure and shapes are the same for every chunk of a stream."""

    caches: dict[str, jax.Array]
    started: bool = False


class CacheIO:
    """The caches one chunk reads (``old``: the previous chunk's; None: a stream's start, zeros) and writes
    (``new``: every cached conv writes one, so the state keeps its structure)."""

    def __init__(self, old: Optional[Mapping[str, jax.Array]]):
        self.old, self.new = old, {}

    def read(self, key: str, shape: tuple[int, ...], dtype) -> jax.Array:
        if self.old is None:
            return jnp.zeros(shape, dtype)
        if key not in self.old:
            raise ValueError(f"the stream state has no cache for {key!r}: it was made for another model")
        cache = self.old[key]
        if tuple(cache.shape) != tuple(shape):
            raise ValueError(f"the stream state's cache {key!r} has shape {tuple(cache.shape)}, this chunk needs "
                             f"{tuple(shape)}: the state was made for chunks of another batch or frame size")
        return cache.astype(dtype)

    def write(self, key: str, value: jax.Array) -> None:
        self.new[key] = value


# --------------------------------------------------------------------------------------------------------- layers
def _sharded(init, names):
    return nnx.with_partitioning(init, names, eager_sharding=False)


def _kernel_init():
    return nnx.initializers.lecun_normal(in_axis=-2, out_axis=-1)


class RMSNorm(nnx.Module):
    """Wan's RMS norm over channels: x / max(||x||, 1e-12) * sqrt(C) * gamma, computed in float32 (= x times
    rsqrt(mean(x^2)) away from the floor)."""

    def __init__(self, channels: int, *, dtype, param_dtype):
        self.dtype = dtype
        self.gamma = nnx.Param(_sharded(nnx.initializers.ones_init(), (VAE_OUT,))(None, (channels,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        squares = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
        scale = jax.lax.rsqrt(jnp.maximum(squares, NORM_EPS ** 2)) * math.sqrt(x.shape[-1])
        return (x * scale * self.gamma[...].astype(jnp.float32)).astype(self.dtype)


class Conv(nnx.Module):
    """A convolution over the trailing spatial axes of [n, (t,) h, w, c]: kernel [(kt,) kh, kw, in, out] + bias."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, ...], *, rngs, dtype, param_dtype, precision):
        self.dtype, self.precision = dtype, precision
        names = (None,) * len(kernel) + (VAE_IN, VAE_OUT)
        self.kernel = nnx.Param(_sharded(_kernel_init(), names)(rngs.params(), kernel + (cin, cout), param_dtype))
        self.bias = nnx.Param(_sharded(nnx.initializers.zeros_init(), (VAE_OUT,))(None, (cout,), param_dtype))

    def convolve(self, x: jax.Array, strides: Sequence[int], padding: Sequence[tuple[int, int]]) -> jax.Array:
        spatial = "DHW"[-(x.ndim - 2):]
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), self.kernel[...].astype(self.dtype), tuple(strides), tuple(padding),
            dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"), precision=self.precision)
        return y + self.bias[...].astype(self.dtype)


class CausalConv3d(Conv):
    """Wan's causal 3D conv (kernel kt x k x k, time stride s): the spatial axes padded by k // 2 on each side; in
    time, the input is preceded by the last ``cache_frames`` frames this conv saw (the cache; zeros at a stream's
    start, i.e. causal zero padding) and convolved without padding. kt = 1: no cache."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int], *, time_stride: int = 1,
                 cache_frames: Optional[int] = None, rngs, dtype, param_dtype, precision):
        super().__init__(cin, cout, kernel, rngs=rngs, dtype=dtype, param_dtype=param_dtype, precision=precision)
        self.time_stride = time_stride
        self.cache_frames = kernel[0] - 1 if cache_frames is None else cache_frames
        self.cache_key = ""  # set by WanVAE: this conv's path, its key in StreamState.caches
        self.conv_impl = "auto"  # set by WanVAE

    def __call__(self, x: jax.Array, io: Optional[CacheIO] = None, *, prepend: bool = True) -> jax.Array:
        """x [b, t, h, w, cin] -> [b, t', h, w, cout]; ``prepend=False``: the cache is written, not read (the
        encoder's time downsampling at a stream's first chunk)."""
        x = x.astype(self.dtype)
        if self.cache_frames:
            if prepend:
                past = io.read(self.cache_key, (x.shape[0], self.cache_frames) + x.shape[2:], x.dtype)
                x = jnp.concatenate([past, x], axis=1)
            io.write(self.cache_key, x[:, -self.cache_frames:])
        pad = ((self.kernel.shape[1] // 2,) * 2, (self.kernel.shape[2] // 2,) * 2)
        if self.kernel.shape[0] > 1 and _resolve_conv_impl(self.conv_impl) == "time_taps":
            return self._convolve_time_taps(x, pad)
        return self.convolve(x, (self.time_stride, 1, 1), ((0, 0),) + pad)

    def _convolve_time_taps(self, x: jax.Array, pad) -> jax.Array:
        """The same convolution as a sum over the kernel's time taps of per-frame 2D convolutions."""
        b, kt, s = x.shape[0], self.kernel.shape[0], self.time_stride
        frames = (x.shape[1] - kt) // s + 1
        kernel = self.kernel[...].astype(self.dtype)
        out = None
        for tap in range(kt):
            shifted = x[:, tap: tap + s * (frames - 1) + 1: s].reshape((b * frames,) + x.shape[2:])
            y = jax.lax.conv_general_dilated(shifted, kernel[tap], (1, 1), pad, precision=self.precision,
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            out = y if out is None else out + y
        out = out + self.bias[...].astype(self.dtype)
        return out.reshape((b, frames) + out.shape[1:])

    def keep_cache(self, io: CacheIO, like: jax.Array) -> None:
        """Passes the cache on unchanged (this chunk gave the conv no frames)."""
        io.write(self.cache_key, io.read(self.cache_key, (like.shape[0], self.cache_frames) + like.shape[2:],
                                         self.dtype))


CONV_IMPLS = ("auto", "3d", "time_taps")


def _resolve_conv_impl(impl: str) -> str:
    """"auto": per-frame 2D convolutions summed over the time taps on CPU (XLA:CPU's 3D convolution runs at about half
    the speed of its 2D one), one 3D convolution elsewhere (cuDNN's)."""
    if impl == "auto":
        return "time_taps" if jax.default_backend() == "cpu" else "3d"
    return impl


def _per_frame(fn, x: jax.Array) -> jax.Array:
    """Applies an image function to each frame of [b, t, h, w, c]."""
    b, t = x.shape[:2]
    y = fn(x.reshape((b * t,) + x.shape[2:]))
    return y.reshape((b, t) + y.shape[1:])


class ResidualBlock(nnx.Module):
    """norm1, SiLU, conv1 (3x3x3 causal), norm2, SiLU, conv2, plus the input (through a 1x1x1 ``conv_shortcut``
    when the width changes)."""

    def __init__(self, cin: int, cout: int, **kw):
        dtype, param_dtype = kw["dtype"], kw["param_dtype"]
        self.norm1 = RMSNorm(cin, dtype=dtype, param_dtype=param_dtype)
        self.conv1 = CausalConv3d(cin, cout, (3, 3, 3), **kw)
        self.norm2 = RMSNorm(cout, dtype=dtype, param_dtype=param_dtype)
        self.conv2 = CausalConv3d(cout, cout, (3, 3, 3), **kw)
        self.conv_shortcut = CausalConv3d(cin, cout, (1, 1, 1), **kw) if cin != cout else None

    def __call__(self, x: jax.Array, io: CacheIO, first: bool = False) -> jax.Array:
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        h = self.conv1(jax.nn.silu(self.norm1(x)), io)
        h = self.conv2(jax.nn.silu(self.norm2(h)), io)
        return h + shortcut.astype(h.dtype)


class AttentionBlock(nnx.Module):
    """Single-head self-attention among the pixels of each frame (no attention across time): RMS norm, 1x1 ``to_qkv``
    (q, k, v = its output channels' thirds, in that order), softmax(q k^T / sqrt(C)) v, 1x1 ``proj``, residual."""

    def __init__(self, channels: int, *, rngs, dtype, param_dtype, precision):
        self.dtype, self.precision = dtype, precision
        self.norm = RMSNorm(channels, dtype=dtype, param_dtype=param_dtype)
        dense = functools.partial(nnx.Linear, dtype=dtype, param_dtype=param_dtype, precision=precision, rngs=rngs,
                                  kernel_init=_sharded(_kernel_init(), (VAE_IN, VAE_OUT)),
                                  bias_init=_sharded(nnx.initializers.zeros_init(), (VAE_OUT,)))
        self.to_qkv = dense(channels, 3 * channels)
        self.proj = dense(channels, channels)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, h, w, c = x.shape
        tokens = self.norm(x).reshape(b * t, h * w, c)
        q, k, v = jnp.split(self.to_qkv(tokens), 3, axis=-1)
        scores = jnp.einsum("nqc,nkc->nqk", q, k, precision=self.precision, preferred_element_type=jnp.float32)
        probs = jax.nn.softmax(scores / math.sqrt(c), axis=-1)
        out = jnp.einsum("nqk,nkc->nqc", probs.astype(v.dtype), v, precision=self.precision)
        return x + self.proj(out).reshape(b, t, h, w, c).astype(x.dtype)


class Resample(nnx.Module):
    """Wan's resampling, per mode. ``downsample2d``: zero pad right and bottom by 1, 3x3 conv with stride 2.
    ``downsample3d``: that, then the time conv (kernel 3, stride 2, unpadded) over [previous chunk's last frame,
    this chunk]; at a stream's first chunk over the chunk alone, after its first frame passed through unchanged.
    ``upsample2d``: nearest 2x, 3x3 conv to ``cout`` (Wan2.1: half the channels). ``upsample3d``: first the causal
    time conv to 2C channels, read as two frames per input frame (channels [0, C) the earlier one); a stream's first
    frame skips it (passes through, and is not cached)."""

    MODES = ("downsample2d", "downsample3d", "upsample2d", "upsample3d")

    def __init__(self, channels: int, mode: str, cout: Optional[int] = None, **kw):
        if mode not in self.MODES:
            raise ValueError(f"Resample mode={mode!r}; valid: {self.MODES}")
        self.mode = mode
        spatial_out = (cout or channels // 2) if mode.startswith("up") else channels
        self.spatial_conv = Conv(channels, spatial_out, (3, 3), **kw)
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(channels, 2 * channels, (3, 1, 1), **kw)
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(channels, channels, (3, 1, 1), time_stride=2, cache_frames=1, **kw)
        else:
            self.time_conv = None

    def __call__(self, x: jax.Array, io: CacheIO, first: bool = False) -> jax.Array:
        if self.mode == "upsample3d":
            x = self._double_frames(x, io, first)
        if self.mode.startswith("up"):
            x = _per_frame(lambda f: self.spatial_conv.convolve(_upsample_nearest(f), (1, 1), ((1, 1), (1, 1))), x)
        else:
            x = _per_frame(lambda f: self.spatial_conv.convolve(f, (2, 2), ((0, 1), (0, 1))), x)
        if self.mode == "downsample3d":
            x = self._halve_frames(x, io, first)
        return x

    def _double_frames(self, x: jax.Array, io: CacheIO, first: bool) -> jax.Array:
        head, x = (x[:, :1], x[:, 1:]) if first else (None, x)
        if x.shape[1] == 0:
            self.time_conv.keep_cache(io, head)
            return head
        y = self.time_conv(x, io)  # [b, t, h, w, 2C]
        b, t, h, w, c2 = y.shape
        y = y.reshape(b, t, h, w, 2, c2 // 2).transpose(0, 1, 4, 2, 3, 5).reshape(b, 2 * t, h, w, c2 // 2)
        return y if head is None else jnp.concatenate([head.astype(y.dtype), y], axis=1)

    def _halve_frames(self, x: jax.Array, io: CacheIO, first: bool) -> jax.Array:
        if not first:
            return self.time_conv(x, io)
        if x.shape[1] == 1:
            io.write(self.time_conv.cache_key, x.astype(self.time_conv.dtype))
            return x
        return jnp.concatenate([x[:, :1], self.time_conv(x, io, prepend=False).astype(x.dtype)], axis=1)


def _upsample_nearest(x: jax.Array) -> jax.Array:
    """[n, h, w, c] -> [n, 2h, 2w, c], each pixel repeated (nearest-exact at scale 2)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class MidBlock(nnx.Module):
    """Residual block, attention, residual block (``resnets.0``, ``attentions.0``, ``resnets.1``)."""

    def __init__(self, channels: int, **kw):
        self.resnets = nnx.List([ResidualBlock(channels, channels, **kw) for _ in range(2)])
        self.attentions = nnx.List([AttentionBlock(channels, **kw)])

    def __call__(self, x: jax.Array, io: CacheIO) -> jax.Array:
        x = self.resnets[0](x, io)
        return self.resnets[1](self.attentions[0](x), io)


class UpBlock(nnx.Module):
    """num_res_blocks + 1 residual blocks, then a ``Resample`` (``upsampler``; none at the last level)."""

    def __init__(self, cin: int, cout: int, num_res_blocks: int, mode: Optional[str], **kw):
        self.resnets = nnx.List([ResidualBlock(cin if i == 0 else cout, cout, **kw)
                                 for i in range(num_res_blocks + 1)])
        self.upsampler = Resample(cout, mode, **kw) if mode else None

    def __call__(self, x: jax.Array, io: CacheIO, first: bool) -> jax.Array:
        for block in self.resnets:
            x = block(x, io)
        return x if self.upsampler is None else self.upsampler(x, io, first)


class Encoder(nnx.Module):
    """conv_in, down_blocks, mid_block, norm_out, SiLU, conv_out (2 z_dim channels: mean and log-variance)."""

    def __init__(self, cfg: WanVAEConfig, **kw):
        dims = [cfg.base_dim * m for m in (1,) + cfg.dim_mult]
        self.conv_in = CausalConv3d(cfg.in_channels, dims[0], (3, 3, 3), **kw)
        blocks = []
        for level, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(cin, cout, **kw))
                cin = cout
            if level != len(cfg.dim_mult) - 1:
                temporal = cfg.temperal_downsample[level]
                blocks.append(Resample(cout, "downsample3d" if temporal else "downsample2d", **kw))
        self.down_blocks = nnx.List(blocks)
        self.mid_block = MidBlock(dims[-1], **kw)
        self.norm_out = RMSNorm(dims[-1], dtype=kw["dtype"], param_dtype=kw["param_dtype"])
        self.conv_out = CausalConv3d(dims[-1], 2 * cfg.z_dim, (3, 3, 3), **kw)

    def __call__(self, x: jax.Array, io: CacheIO, first: bool) -> jax.Array:
        x = self.conv_in(x, io)
        for block in self.down_blocks:
            x = block(x, io, first)
        x = self.mid_block(x, io)
        return self.conv_out(jax.nn.silu(self.norm_out(x)), io)


class Decoder(nnx.Module):
    """conv_in, mid_block, up_blocks, norm_out, SiLU, conv_out (RGB). Widths: the levels' in reverse, each level
    after the first entered at half its width (the previous level's resample halved it)."""

    def __init__(self, cfg: WanVAEConfig, **kw):
        mult = cfg.dim_mult
        dims = [cfg.decoder_dim * m for m in (mult[-1],) + tuple(reversed(mult))]
        temporal = tuple(reversed(cfg.temperal_downsample))
        self.conv_in = CausalConv3d(cfg.z_dim, dims[0], (3, 3, 3), **kw)
        self.mid_block = MidBlock(dims[0], **kw)
        blocks = []
        for level, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            cin = cin // 2 if level > 0 else cin
            mode = None
            if level != len(mult) - 1:
                mode = "upsample3d" if temporal[level] else "upsample2d"
            blocks.append(UpBlock(cin, cout, cfg.num_res_blocks, mode, **kw))
        self.up_blocks = nnx.List(blocks)
        self.norm_out = RMSNorm(dims[-1], dtype=kw["dtype"], param_dtype=kw["param_dtype"])
        self.conv_out = CausalConv3d(dims[-1], cfg.out_channels, (3, 3, 3), **kw)

    def __call__(self, x: jax.Array, io: CacheIO, first: bool) -> jax.Array:
        x = self.mid_block(self.conv_in(x, io), io)
        for block in self.up_blocks:
            x = block(x, io, first)
        return self.conv_out(jax.nn.silu(self.norm_out(x)), io)


class WanVAE(nnx.Module):
    """The network (diffusers' parameter layout): ``encoder``, ``quant_conv``, ``post_quant_conv``, ``decoder``.
    ``encode`` / ``decode`` run raw (unnormalised) latents for one chunk given a ``CacheIO``."""

    def __init__(self, cfg: WanVAEConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32,
                 precision=None, conv_impl: str = "auto"):
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl={conv_impl!r}; valid: {CONV_IMPLS}")
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype, precision=precision)
        self.config = cfg
        self.encoder = Encoder(cfg, **kw)
        self.quant_conv = CausalConv3d(2 * cfg.z_dim, 2 * cfg.z_dim, (1, 1, 1), **kw)
        self.post_quant_conv = CausalConv3d(cfg.z_dim, cfg.z_dim, (1, 1, 1), **kw)
        self.decoder = Decoder(cfg, **kw)
        for path, module in nnx.iter_modules(self):
            if isinstance(module, CausalConv3d):
                module.cache_key, module.conv_impl = ".".join(map(str, path)), conv_impl

    def encode(self, video: jax.Array, io: CacheIO, first: bool) -> jax.Array:
        """video [b, T, H, W, 3] -> posterior mean [b, t, h, w, z_dim] (float32)."""
        moments = self.quant_conv(self.encoder(video, io, first))
        return moments[..., : self.config.z_dim].astype(jnp.float32)

    def decode(self, z: jax.Array, io: CacheIO, first: bool) -> jax.Array:
        """z [b, t, h, w, z_dim] -> video [b, T, H, W, 3] in [-1, 1] (float32)."""
        x = self.decoder(self.post_quant_conv(z), io, first)
        return jnp.clip(x.astype(jnp.float32), -1.0, 1.0)


def abstract_wan_vae(cfg: WanVAEConfig, dtype=jnp.float32, param_dtype=None, precision=None, mesh=None,
                     rules=parallel.LOGICAL_RULES, conv_impl: str = "auto"):
    """(graphdef, abstract params: an nnx.State of jax.ShapeDtypeStruct) of a ``WanVAE`` without allocating; with
    ``mesh`` each leaf carries the NamedSharding its logical axis names map to under ``rules``."""
    param_dtype = param_dtype or dtype
    with parallel.outside_mesh():
        graphdef, abstract = nnx.split(nnx.eval_shape(
            lambda: WanVAE(cfg, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=param_dtype, precision=precision,
                           conv_impl=conv_impl)))
    if mesh is not None:
        shardings = parallel.state_shardings(abstract, mesh, rules)
        abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    return graphdef, abstract


# ------------------------------------------------------------------------------------------ the VideoAutoencoder
class WanVideoAutoencoder:
    """Wan2.1's VAE as a ``models.autoencoder.VideoAutoencoder``: frames [b, T, H, W, 3] in [-1, 1] <-> normalised
    latents [b, t, h, w, z_dim] ((mu - latents_mean) / latents_std; encode gives the posterior mean), T = 1 + 4(t-1)
    (``temporal_factor`` = 4 for Wan2.1), H = 8 h. ``params``: the network's nnx.State (an argument of every
    function, never a constant); ``graphdef``: its structure. The encoder and the decoder stream: ``*_chunk``
    carries a ``StreamState`` (the causal convs' last frames) from chunk to chunk; a stream's first chunk of c latent
    frames is 1 + 4(c-1) video frames, every later one 4c, and the concatenated outputs equal the whole-clip
    ``encode`` / ``decode``. All functions are pure and jit-able; a jitted ``*_chunk`` compiles once for the first
    chunk and once for all the others."""

    def __init__(self, config: WanVAEConfig, graphdef, params):
        self.config, self.graphdef, self.params = config, graphdef, params
        self.temporal_factor = config.temporal_factor
        self._mean = np.asarray(config.latents_mean, np.float32)
        self._std = np.asarray(config.latents_std, np.float32)

    @classmethod
    def random(cls, config: WanVAEConfig = WAN21_VAE, seed: int = 0, dtype=jnp.float32, param_dtype=None,
               precision=None, conv_impl: str = "auto") -> "WanVideoAutoencoder":
        """Random weights (benchmarks, tests), initialised in one jitted program."""
        graphdef, _ = abstract_wan_vae(config, dtype, param_dtype, precision, conv_impl=conv_impl)
        build = lambda: nnx.split(WanVAE(config, rngs=nnx.Rngs(seed), dtype=dtype, param_dtype=param_dtype or dtype,
                                         precision=precision, conv_impl=conv_impl))[1]
        with parallel.outside_mesh():
            params = jax.jit(build)()
        return cls(config, graphdef, params)

    # ------------------------------------------------------------------------------------------------ shapes
    def latent_shape(self, frame_shape) -> tuple[int, ...]:
        """[T, H, W, 3] -> [1 + (T-1) / 4, H / 8, W / 8, z_dim]; ValueError naming what is not divisible."""
        t, h, w, c = frame_shape
        self._check_frames(t, first=True, what="video")
        self._check_pixels(h, w, c)
        f = self.config.spatial_factor
        return 1 + (t - 1) // self.temporal_factor, h // f, w // f, self.config.z_dim

    def _check_frames(self, t: int, first: bool, what: str) -> None:
        k = self.temporal_factor
        if first and (t < 1 or (t - 1) % k):
            raise ValueError(f"{what} has T={t} frames; the Wan VAE reads 1 + {k}j frames (1, {1 + k}, "
                             f"{1 + 2 * k}, ...) at a stream's start: the first frame alone, then groups of {k}")
        if not first and (t < k or t % k):
            raise ValueError(f"{what} has T={t} frames; after a stream's first chunk the Wan VAE reads multiples "
                             f"of {k} frames")

    def _check_pixels(self, h: int, w: int, c: int) -> None:
        f = self.config.spatial_factor
        if c != self.config.in_channels:
            raise ValueError(f"video has {c} channels; the Wan VAE reads {self.config.in_channels} (RGB)")
        if h % f or w % f or h < f or w < f:
            raise ValueError(f"frame size {h}x{w} is not a multiple of the Wan VAE's spatial factor {f}")

    def _check_latents(self, latents: jax.Array) -> None:
        if latents.ndim != 5:
            raise ValueError(f"latents have shape {tuple(latents.shape)}; expected [b, t, h, w, {self.config.z_dim}]")
        if latents.shape[-1] != self.config.z_dim:
            raise ValueError(f"latents have {latents.shape[-1]} channels; this Wan VAE has z_dim="
                             f"{self.config.z_dim}")
        if latents.shape[1] < 1:
            raise ValueError("latents have no frames")

    def _check_video(self, video: jax.Array, first: bool) -> None:
        if video.ndim != 5:
            raise ValueError(f"video has shape {tuple(video.shape)}; expected [b, T, H, W, 3]")
        self._check_pixels(*video.shape[2:])
        self._check_frames(video.shape[1], first, "video" if first else "video chunk")

    # ---------------------------------------------------------------------------------------------- encoder
    def _encode(self, params, video: jax.Array, caches, first: bool) -> tuple[dict, jax.Array]:
        io = CacheIO(caches)
        mu = nnx.merge(self.graphdef, params).encode(video, io, first)
        return io.new, (mu - self._mean) / self._std

    def encode(self, params, video: jax.Array) -> jax.Array:
        """video [b, T, H, W, 3] in [-1, 1], T = 1 + 4k -> normalised posterior mean [b, 1 + k, H/8, W/8, z_dim]."""
        self._check_video(video, first=True)
        return self._encode(params, video, None, first=True)[1]

    def init_encode_state(self, params, video_chunk_shape) -> StreamState:
        """Zero caches for a stream of video chunks [b, T, H, W, 3] (their shapes depend on b, H, W only)."""
        b, _, h, w, c = video_chunk_shape
        probe = jax.ShapeDtypeStruct((b, 1 + self.temporal_factor, h, w, c), jnp.float32)
        self._check_video(probe, first=True)
        shapes = jax.eval_shape(lambda p, v: self._encode(p, v, None, True)[0], params, probe)
        return StreamState(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), started=False)

    def encode_chunk(self, params, state: StreamState, video: jax.Array) -> tuple[StreamState, jax.Array]:
        """One chunk of a video stream: the first 1 + 4(c-1) frames, later ones 4c -> (state, c latent frames)."""
        self._check_video(video, first=not state.started)
        caches, latents = self._encode(params, video, state.caches, first=not state.started)
        return StreamState(caches, started=True), latents

    # ---------------------------------------------------------------------------------------------- decoder
    def _decode(self, params, latents: jax.Array, caches, first: bool) -> tuple[dict, jax.Array]:
        self._check_latents(latents)
        io = CacheIO(caches)
        z = latents.astype(jnp.float32) * self._std + self._mean
        video = nnx.merge(self.graphdef, params).decode(z, io, first)
        return io.new, video

    def decode(self, params, latents: jax.Array) -> jax.Array:
        """Normalised latents [b, t, h, w, z_dim] -> video [b, 1 + 4(t-1), 8h, 8w, 3] in [-1, 1] (float32)."""
        return self._decode(params, latents, None, first=True)[1]

    def init_decode_state(self, params, latent_chunk_shape) -> StreamState:
        """Zero caches for a stream of latent chunks [b, c, h, w, z_dim] (their shapes depend on b, h, w only)."""
        b, _, h, w, c = latent_chunk_shape
        probe = jax.ShapeDtypeStruct((b, 1, h, w, c), jnp.float32)
        shapes = jax.eval_shape(lambda p, z: self._decode(p, z, None, True)[0], params, probe)
        return StreamState(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), started=False)

    def decode_chunk(self, params, state: StreamState, latents: jax.Array) -> tuple[StreamState, jax.Array]:
        """One chunk of c latent frames -> (state, video): 1 + 4(c-1) frames for the stream's first chunk, 4c after."""
        caches, video = self._decode(params, latents, state.caches, first=not state.started)
        return StreamState(caches, started=True), video


def state_bytes(state) -> int:
    """Bytes of a (possibly abstract) stream state: the carried caches."""
    return int(sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(state)))


# ----------------------------------------------------------------------------------------------------- weights
_RENAMES = {"spatial_conv": ("resample", "1"), "upsampler": ("upsamplers", "0"), "kernel": ("weight",)}


def diffusers_name(path: Sequence) -> str:
    """Our parameter path -> its diffusers tensor name (``Resample.spatial_conv`` is diffusers' ``resample.1``,
    ``UpBlock.upsampler`` its ``upsamplers.0``, kernels its ``weight``)."""
    parts = []
    for part in path:
        parts.extend(_RENAMES.get(str(part), (str(part),)))
    return ".".join(parts)


def _from_torch_layout(x: np.ndarray, target_ndim: int) -> np.ndarray:
    """A diffusers tensor in our layout: conv weights [out, in, (kt,) kh, kw] -> [(kt,) kh, kw, in, out]; 1x1 conv
    weights of attention [out, in, 1, 1] -> dense [in, out]; norm gammas [C, 1, 1(, 1)] -> [C]."""
    if target_ndim == 1:
        return x.reshape(-1)
    if target_ndim == 2:
        return x.reshape(x.shape[:2]).T
    return np.transpose(x, tuple(range(2, x.ndim)) + (1, 0))


def resolve_directory(directory: str) -> str:
    """A diffusers VAE folder (config.json beside the weights), or a pipeline root holding one in ``vae/``."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"no Wan VAE directory: {directory!r} does not exist or is not a directory")
    nested = os.path.join(directory, "vae")
    if not os.path.isfile(os.path.join(directory, CONFIG_FILE)) and os.path.isfile(os.path.join(nested, CONFIG_FILE)):
        return nested
    return directory


def weight_files(directory: str) -> list[str]:
    """diffusion_pytorch_model.safetensors, else the shards its index names (each checked)."""
    files = indexed_weight_files(directory, WEIGHTS_FILE, WEIGHTS_INDEX_FILE)
    if files is not None:
        return files
    single, index = os.path.join(directory, WEIGHTS_FILE), os.path.join(directory, WEIGHTS_INDEX_FILE)
    bins = [n for n in os.listdir(directory) if n.endswith(".bin")]
    raise ValueError(f"no Wan VAE weights: neither {single!r} nor {index!r} exists"
                     + (f" ({bins[0]} found: only safetensors are read; re-save with diffusers' save_pretrained)"
                        if bins else ""))


def _read_tensors(directory: str) -> dict[str, tuple[SafetensorsFile, str]]:
    found = {}
    for path in weight_files(directory):
        reader = SafetensorsFile(path)
        for name in reader.keys():
            found.setdefault(name, (reader, name))
    return found


def load_wan_vae(directory: str, dtype=jnp.float32, param_dtype=None, precision=None, mesh=None,
                 rules=parallel.LOGICAL_RULES, conv_impl: str = "auto") -> WanVideoAutoencoder:
    """The Wan2.1 VAE of a local diffusers folder (config.json + diffusion_pytorch_model.safetensors or its shards;
    a pipeline root with ``vae/`` too), without PyTorch: parameters in ``param_dtype`` (default ``dtype``, also the
    compute dtype), each placed by its logical axis names on ``mesh`` when given. ValueError naming the file and the
    missing, unexpected or mis-shaped tensor, or the config field and value."""
    directory = resolve_directory(directory)
    config_path = os.path.join(directory, CONFIG_FILE)
    cfg = WanVAEConfig.from_json(config_path)
    param_dtype = param_dtype or dtype
    graphdef, abstract = abstract_wan_vae(cfg, dtype, param_dtype, precision, mesh, rules, conv_impl)
    pure = nnx.to_pure_dict(abstract)
    paths = [tuple(k.key for k in path) for path, _ in jax.tree_util.tree_flatten_with_path(pure)[0]]
    wanted = {diffusers_name(path): path for path in paths}
    found = _read_tensors(directory)
    where = found[next(iter(found))][0].path if found else directory
    missing = [n for n in wanted if n not in found]
    if missing:
        raise ValueError(f"{where!r} lacks the Wan VAE tensor {missing[0]!r}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                         + f"; {config_path!r} describes a model with it")
    extra = sorted(n for n in found if n not in wanted)
    if extra:
        raise ValueError(f"{found[extra[0]][0].path!r} holds the tensor {extra[0]!r}"
                         + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
                         + f", which the model {config_path!r} describes does not have")
    for name, path in wanted.items():
        reader, key = found[name]
        leaf = get_leaf(pure, path)
        x = _from_torch_layout(reader.get(key), len(leaf.shape))
        if tuple(x.shape) != tuple(leaf.shape):
            raise ValueError(f"{reader.path!r}: tensor {name!r} has shape {tuple(reader.get(key).shape)}, "
                             f"{config_path!r} implies {tuple(leaf.shape)} in our layout (channels last)")
        set_leaf(pure, path, _place(x, param_dtype, getattr(leaf, "sharding", None) if mesh is not None else None))
    nnx.replace_by_pure_dict(abstract, pure)
    return WanVideoAutoencoder(cfg, graphdef, abstract)


def _place(x: np.ndarray, dtype, sharding) -> jax.Array:
    target = np.dtype(dtype)
    if sharding is None:
        return jnp.asarray(np.asarray(x, dtype=target))
    return jax.make_array_from_callback(x.shape, sharding, lambda index: np.asarray(x[index], dtype=target))
