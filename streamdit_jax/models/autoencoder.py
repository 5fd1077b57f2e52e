"""Video autoencoders behind one interface: frames [b, T, H, W, 3] in [-1, 1] <-> latents [b, T, h, w, C].

The paper uses a learned causal VAE (4x temporal, 8x spatial compression, 8 channels; Sec. 5). At toy scale the
default is a parameter-free patch (space-to-depth) autoencoder: exact, instant, and it keeps one latent frame per
video frame, so chunks decode independently with no seams.
"""
from __future__ import annotations

import dataclasses

import einops
import jax


@dataclasses.dataclass(frozen=True)
class PatchAutoencoder:
    """Space-to-depth by ``factor``: [H, W, 3] -> [H/f, W/f, 3 f^2]. Lossless (decode(encode(x)) == x)."""

    factor: int = 2

    def latent_channels(self, channels: int = 3) -> int:
        return channels * self.factor ** 2

    def latent_shape(self, frame_shape) -> tuple[int, ...]:
        """[T, H, W, 3] -> [T, H/f, W/f, 3 f^2]."""
        t, h, w, c = frame_shape
        if h % self.factor or w % self.factor:
            raise ValueError(f"frame size {h}x{w} is not divisible by the autoencoder factor {self.factor}")
        return t, h // self.factor, w // self.factor, c * self.factor ** 2

    def encode(self, frames: jax.Array) -> jax.Array:
        self.latent_shape(frames.shape[-4:])
        f = self.factor
        return einops.rearrange(frames, "... t (h a) (w b) c -> ... t h w (a b c)", a=f, b=f)

    def decode(self, latents: jax.Array) -> jax.Array:
        f = self.factor
        return einops.rearrange(latents, "... t h w (a b c) -> ... t (h a) (w b) c", a=f, b=f)
