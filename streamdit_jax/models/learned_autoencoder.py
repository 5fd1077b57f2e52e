"""A learned frame autoencoder: the toy-scale stand-in for the paper's video VAE (8x spatial compression, 8 channels).

StreamDiT diffuses in the latent space of a learned autoencoder (Sec. 5: a causal VAE with 4x temporal and 8x
spatial compression, 8 channels). Diffusion in a compact, semantic latent is what makes the paper's model learnable
at its scale; the parameter-free patch autoencoder (autoencoder.PatchAutoencoder) keeps raw pixels, so a CPU-sized DiT
spends its few thousand steps learning pixel edges. This module trains and serves a per-frame convolutional
autoencoder with the paper's spatial factor (8) and channel count (8 by default); it keeps one latent frame per video
frame (no temporal compression), so chunks still decode independently, without seams.

Convolutions pad circularly because the shapes world wraps objects around the borders (a torus). The latents are
standardised per channel with statistics measured on training frames after training (like Stable Diffusion's
scaling factor), so flow matching's unit Gaussian noise matches their scale.

On disk an autoencoder is a directory: ``autoencoder.json`` (architecture, latent statistics, how it was trained) and
``params.msgpack`` (flax.serialization). Written atomically: a killed save leaves the previous one intact.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
from typing import Sequence

import einops
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, serialization

from streamdit_jax.models.autoencoder import PerFrameDecoding

CONFIG_FILE = "autoencoder.json"
PARAMS_FILE = "params.msgpack"


@dataclasses.dataclass(frozen=True)
class ConvAutoencoderConfig:
    """latent_channels: C of the latent [H/f, W/f, C]; space_to_depth: the stem first folds s x s pixels into
    channels (cheap on a CPU: no convolution runs at full resolution); widths: channels after the stem and after
    each stride-2 level, so factor f = space_to_depth * 2 ** (len(widths) - 1); palette: RGB colours of a
    world drawn in flat colours (the shapes world: background + 7 object colours). With a palette the decoder
    classifies each pixel into one of them (cross-entropy; decode = the most likely colour) instead of regressing
    RGB: regression blurs the edge pixels that tell a 7-pixel circle from a square (the evaluator read MSE- and
    L1-trained reconstructions of circles as squares 30-100% of the time), classification keeps them crisp."""

    latent_channels: int = 8
    widths: tuple[int, ...] = (32, 64, 128)
    space_to_depth: int = 2
    palette: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "palette", tuple(tuple(int(v) for v in c) for c in self.palette))
        if self.palette and (len(self.palette) < 2 or any(len(c) != 3 or not all(0 <= v <= 255 for v in c)
                                                           for c in self.palette)):
            raise ValueError(f"palette must hold >= 2 RGB triples in [0, 255], got {self.palette}")
        if self.latent_channels < 1:
            raise ValueError(f"latent_channels must be >= 1, got {self.latent_channels}")
        if self.space_to_depth < 1:
            raise ValueError(f"space_to_depth must be >= 1, got {self.space_to_depth}")
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(f"widths must hold >= 2 positive ints (stem + one level per factor of 2), "
                             f"got {self.widths}")

    @property
    def factor(self) -> int:
        return self.space_to_depth * 2 ** (len(self.widths) - 1)

    @property
    def out_channels(self) -> int:
        """Decoder outputs per pixel: palette logits, or RGB."""
        return len(self.palette) if self.palette else 3


def _conv(cin, cout, kernel, stride, rngs):
    return nnx.Conv(cin, cout, (kernel, kernel), strides=(stride, stride), padding="CIRCULAR", rngs=rngs)


class ConvAutoencoder(nnx.Module):
    """Frames [..., H, W, 3] in [-1, 1] <-> raw (unstandardised) latents [..., H/f, W/f, C]; f = config.factor."""

    def __init__(self, config: ConvAutoencoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        w = config.widths
        s2 = 3 * config.space_to_depth ** 2
        self.enc_stem = _conv(s2, w[0], 3, 1, rngs)
        self.enc_down = nnx.List([_conv(w[i], w[i + 1], 4, 2, rngs) for i in range(len(w) - 1)])
        self.enc_mix = nnx.List([_conv(w[i + 1], w[i + 1], 3, 1, rngs) for i in range(len(w) - 1)])
        self.enc_out = _conv(w[-1], config.latent_channels, 1, 1, rngs)
        self.dec_in = _conv(config.latent_channels, w[-1], 3, 1, rngs)
        self.dec_up = nnx.List([_conv(w[i + 1], w[i], 3, 1, rngs) for i in reversed(range(len(w) - 1))])
        self.dec_mix = nnx.List([_conv(w[i], w[i], 3, 1, rngs) for i in reversed(range(len(w) - 1))])
        self.dec_out = _conv(w[0], config.out_channels * config.space_to_depth ** 2, 3, 1, rngs)

    @staticmethod
    def _flat(x):
        return x.reshape((-1,) + x.shape[-3:]), x.shape[:-3]

    def encode(self, frames: jax.Array) -> jax.Array:
        x, lead = self._flat(frames)
        s = self.config.space_to_depth
        x = nnx.gelu(self.enc_stem(einops.rearrange(x, "b (h p) (w q) c -> b h w (p q c)", p=s, q=s)))
        for down, mix in zip(self.enc_down, self.enc_mix):
            x = nnx.gelu(down(x))
            x = x + nnx.gelu(mix(x))
        z = self.enc_out(x)
        return z.reshape(lead + z.shape[1:])

    def decode(self, latents: jax.Array) -> jax.Array:
        """Frames in [-1, 1]: RGB regression, or each pixel's most likely palette colour."""
        y = self.decode_outputs(latents)
        if not self.config.palette:
            return y
        palette = jnp.asarray(self.config.palette, jnp.float32) / 127.5 - 1.0
        return palette[jnp.argmax(y, axis=-1)]

    def decode_outputs(self, latents: jax.Array) -> jax.Array:
        """[..., H, W, out_channels]: RGB, or palette logits (what training's loss sees)."""
        x, lead = self._flat(latents)
        x = nnx.gelu(self.dec_in(x))
        for up, mix in zip(self.dec_up, self.dec_mix):
            b, h, w, c = x.shape
            x = jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")
            x = nnx.gelu(up(x))
            x = x + nnx.gelu(mix(x))
        s = self.config.space_to_depth
        y = einops.rearrange(self.dec_out(x), "b h w (p q c) -> b (h p) (w q) c", p=s, q=s)
        return y.reshape(lead + y.shape[1:])


@dataclasses.dataclass(frozen=True, eq=False)
class LearnedAutoencoder(PerFrameDecoding):
    """A trained ConvAutoencoder with its latent statistics behind the ``VideoAutoencoder`` interface: encode returns
    standardised latents (zero mean, unit variance per channel on training frames). ``params`` = {"net": the
    network's parameters, "shift": [C] mean and "scale": [C] std of raw latents}: arguments of every jitted function
    that encodes or decodes, never constants compiled into it."""

    config: ConvAutoencoderConfig
    graphdef: nnx.GraphDef
    params: dict
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def shift(self) -> np.ndarray:
        return np.asarray(self.params["shift"])

    @property
    def scale(self) -> np.ndarray:
        return np.asarray(self.params["scale"])

    @property
    def factor(self) -> int:
        return self.config.factor

    def latent_channels(self, channels: int = 3) -> int:
        return self.config.latent_channels

    def latent_shape(self, frame_shape) -> tuple[int, ...]:
        """[T, H, W, 3] -> [T, H/f, W/f, C]."""
        t, h, w, c = frame_shape
        f = self.factor
        if h % f or w % f:
            raise ValueError(f"frame size {h}x{w} is not divisible by the learned autoencoder's factor {f}")
        return t, h // f, w // f, self.config.latent_channels

    def encode(self, params, frames: jax.Array) -> jax.Array:
        """Frames [..., H, W, 3] in [-1, 1] -> standardised latents [..., H/f, W/f, C]."""
        self.latent_shape((1,) + tuple(frames.shape[-3:]))
        z = nnx.merge(self.graphdef, params["net"]).encode(frames)
        return (z - params["shift"].astype(z.dtype)) / params["scale"].astype(z.dtype)

    def decode(self, params, latents: jax.Array) -> jax.Array:
        """Latents [..., h, w, C] -> frames [..., h f, w f, 3] in [-1, 1]."""
        z = latents * params["scale"].astype(latents.dtype) + params["shift"].astype(latents.dtype)
        return jnp.clip(nnx.merge(self.graphdef, params["net"]).decode(z.astype(jnp.float32)), -1.0, 1.0)


def new_autoencoder(config: ConvAutoencoderConfig, seed: int = 0) -> ConvAutoencoder:
    return ConvAutoencoder(config, rngs=nnx.Rngs(seed))


def save_autoencoder(path: str, model: ConvAutoencoder, shift, scale, info: dict | None = None) -> None:
    """Writes ``path`` (a directory) atomically: built in a sibling temp dir, then renamed over the old one."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    cfg = model.config
    meta = {"latent_channels": cfg.latent_channels, "palette": [list(c) for c in cfg.palette], "widths": list(cfg.widths),
            "space_to_depth": cfg.space_to_depth, "factor": cfg.factor,
            "shift": [float(v) for v in np.asarray(shift)], "scale": [float(v) for v in np.asarray(scale)],
            "info": info or {}}
    params = nnx.state(model, nnx.Param)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(path), dir=parent)
    try:
        with open(os.path.join(tmp, PARAMS_FILE), "wb") as f:
            f.write(serialization.to_bytes(jax.device_get(nnx.to_pure_dict(params))))
        with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
            json.dump(meta, f, indent=1)
        if os.path.exists(path):
            old = path + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_autoencoder_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isfile(os.path.join(path, PARAMS_FILE))


def autoencoder_fingerprint(path: str) -> str:
    """Identity of a saved autoencoder: a digest of its parameters and latent statistics (not of how it was trained),
    equal for copies of one directory, different for another training run. Models trained on its latents only make
    sense with it, which is what fine-tuning and distillation check."""
    if not is_autoencoder_dir(path):
        raise ValueError(f"{path!r} is not a learned autoencoder directory (expected {CONFIG_FILE} and {PARAMS_FILE})")
    digest = hashlib.sha1()
    with open(os.path.join(path, CONFIG_FILE)) as f:
        meta = {k: v for k, v in json.load(f).items() if k != "info"}
    digest.update(json.dumps(meta, sort_keys=True).encode())
    with open(os.path.join(path, PARAMS_FILE), "rb") as f:
        digest.update(f.read())
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=8)
def load_autoencoder(path: str) -> LearnedAutoencoder:
    """Reads a directory written by save_autoencoder; ValueError naming the path if it is not one."""
    if not is_autoencoder_dir(path):
        raise ValueError(f"{path!r} is not a learned autoencoder directory (expected {CONFIG_FILE} and "
                         f"{PARAMS_FILE}; train one with `python -m experiments.train_autoencoder`)")
    with open(os.path.join(path, CONFIG_FILE)) as f:
        meta = json.load(f)
    config = ConvAutoencoderConfig(latent_channels=meta["latent_channels"], widths=tuple(meta["widths"]),
                                   space_to_depth=meta["space_to_depth"],
                                   palette=tuple(tuple(c) for c in meta.get("palette", ())))
    model = nnx.eval_shape(lambda: new_autoencoder(config))
    graphdef, abstract = nnx.split(model, nnx.Param)
    with open(os.path.join(path, PARAMS_FILE), "rb") as f:
        pure = serialization.msgpack_restore(f.read())
    template = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), nnx.to_pure_dict(abstract))
    try:
        pure = serialization.from_state_dict(template, pure)
    except (ValueError, KeyError) as e:
        raise ValueError(f"{path!r}: parameters do not match the architecture in {CONFIG_FILE}: {e}") from e
    nnx.replace_by_pure_dict(abstract, jax.tree.map(jnp.asarray, pure))
    params = {"net": abstract, "shift": jnp.asarray(meta["shift"], jnp.float32),
              "scale": jnp.asarray(meta["scale"], jnp.float32)}
    return LearnedAutoencoder(config, graphdef, params, meta.get("info", {}))


def latent_statistics(encode_fn, batches: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of raw latents over ``batches`` of frames (the standardisation of encode)."""
    zs = [np.asarray(encode_fn(b)) for b in batches]
    zs = np.concatenate([z.reshape(-1, z.shape[-1]) for z in zs])
    return zs.mean(0), zs.std(0) + 1e-6
