"""Video autoencoders behind one interface (``VideoAutoencoder``): frames [b, T, H, W, 3] in [-1, 1] <-> latents
[b, t, h, w, C], with parameters passed in (never constants of a compiled program) and a streaming decoder.

The paper uses a learned causal VAE (4x temporal, 8x spatial compression; Sec. 5) and decodes the stream chunk by
chunk. A causal decoder carries state from chunk to chunk (the last frames every causal convolution saw), so a stream
decoded chunk by chunk equals one decode of the whole latent video, with no seams; ``decode_chunk`` threads that
state as a pytree. The per-frame autoencoders here (the patch one below, ``learned_autoencoder``) keep one latent
frame per video frame and have empty state. At toy scale the default is the parameter-free patch (space-to-depth)
autoencoder: exact, instant.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import einops
import jax


class VideoAutoencoder(Protocol):
    """``params``: the pytree to pass to the functions below (``{}`` when there are none).
    ``temporal_factor``: video frames per latent frame of a stream chunk (1: per-frame autoencoders; a causal video
    VAE such as Wan's decodes every latent frame after the first to 4 video frames), so a buffer chunk of c latent
    frames decodes to c * temporal_factor video frames.

    ``encode(params, video [..., T, H, W, 3]) -> latents [..., t, h, w, C]``; ``decode(params, latents) -> video``;
    ``init_decode_state(params, latent_chunk_shape [b, c, h, w, C]) -> state`` and
    ``decode_chunk(params, state, latents [b, c, h, w, C]) -> (state, video [b, c * temporal_factor, H, W, 3])``:
    decoding a stream chunk by chunk from the initial state equals ``decode`` of the concatenated latents. A causal
    VAE that decodes a video's first latent frame to one video frame (Wan's, ``models.wan_vae``) returns
    1 + temporal_factor * (c - 1) frames for a stream's first chunk and c * temporal_factor for every later one.
    All of them are pure functions of their arguments (jit them; the state has a fixed structure and shape per chunk
    shape after the first chunk, so a stream compiles at most twice: the first chunk, then all the others).
    """

    params: Any
    temporal_factor: int

    def latent_shape(self, frame_shape) -> tuple[int, ...]: ...

    def encode(self, params, video: jax.Array) -> jax.Array: ...

    def decode(self, params, latents: jax.Array) -> jax.Array: ...

    def init_decode_state(self, params, latent_chunk_shape) -> Any: ...

    def decode_chunk(self, params, state, latents: jax.Array) -> tuple[Any, jax.Array]: ...


class PerFrameDecoding:
    """Streaming decode of an autoencoder with one latent frame per video frame: no state, each chunk on its own."""

    temporal_factor = 1

    def init_decode_state(self, params, latent_chunk_shape) -> dict:
        return {}

    def decode_chunk(self, params, state, latents: jax.Array) -> tuple[dict, jax.Array]:
        return state, self.decode(params, latents)


@dataclasses.dataclass(frozen=True)
class PatchAutoencoder(PerFrameDecoding):
    """Space-to-depth by ``factor``: [H, W, 3] -> [H/f, W/f, 3 f^2]. Lossless (decode(encode(x)) == x); no
    parameters (``params`` is empty)."""

    factor: int = 2

    @property
    def params(self) -> dict:
        return {}

    def latent_channels(self, channels: int = 3) -> int:
        return channels * self.factor ** 2

    def latent_shape(self, frame_shape) -> tuple[int, ...]:
        """[T, H, W, 3] -> [T, H/f, W/f, 3 f^2]."""
        t, h, w, c = frame_shape
        if h % self.factor or w % self.factor:
            raise ValueError(f"frame size {h}x{w} is not divisible by the autoencoder factor {self.factor}")
        return t, h // self.factor, w // self.factor, c * self.factor ** 2

    def encode(self, params, frames: jax.Array) -> jax.Array:
        self.latent_shape(frames.shape[-4:])
        f = self.factor
        return einops.rearrange(frames, "... t (h a) (w b) c -> ... t h w (a b c)", a=f, b=f)

    def decode(self, params, latents: jax.Array) -> jax.Array:
        f = self.factor
        return einops.rearrange(latents, "... t h w (a b c) -> ... t (h a) (w b) c", a=f, b=f)
