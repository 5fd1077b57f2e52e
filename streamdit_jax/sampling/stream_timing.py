"""End-to-end timing of a decoded stream: the stream start (T2V fill, Sec. 6), the buffer step (the DiT's macro step)
and the streaming video decoder (``decode_chunk``), each compiled ahead of time, then run chunk by chunk down to
uint8 frames on the host.

Reported: compile seconds per program; time to first frame (TTFF) from the stream start's call to the first decoded
frames on the host, also from the first buffer step (a buffer already filled) and with the compiles of the three
programs the first frames need; per chunk the DiT's and the decoder's milliseconds; steady-state video frames per
second (a chunk of c latent frames is ``temporal_factor`` x c video frames, the stream's first 1 + 4 (c - 1) for
Wan's causal VAE). Every timed call is waited for (``block_until_ready`` / the host copy), so the parts add up.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax.partition import NoiseSchedule, Partition
from streamdit_jax.pixels import float_to_uint8
from streamdit_jax.sampling.buffer import make_buffer_step, make_stream_start


def host_random(abstract, seed: int = 0, scale: float = 0.02, ones: tuple[str, ...] = ("gamma", "scale")):
    """Random values for an abstract parameter tree (jax.ShapeDtypeStruct leaves, e.g. an nnx.State from
    nnx.eval_shape), drawn on the host: N(0, scale^2), 1 for leaves whose path names one of ``ones`` (norm gains).
    For speed benchmarks: nothing is compiled (XLA:CPU takes half a minute over a jitted init of the Wan VAE)."""
    rng = np.random.default_rng(seed)

    def draw(path, a):
        name = jax.tree_util.keystr(path)
        value = (np.ones(a.shape, np.float32) if any(o in name for o in ones)
                 else scale * rng.standard_normal(a.shape, np.float32))
        return jnp.asarray(value, a.dtype)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def _compile(fn, *args) -> tuple[Any, float]:
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _wait(x):
    return jax.block_until_ready(x)


@dataclasses.dataclass
class StreamTiming:
    """Seconds of one timed stream (see the module docstring)."""

    compile_s: dict[str, float]  # start, step, decode_first, decode
    start_s: float  # the stream start: T2V over the whole buffer (Sec. 6)
    first_step_s: float
    first_decode_s: float  # the first chunk's decode + its host copy
    first_frames: int  # video frames of the first chunk
    frames_per_chunk: int  # video frames of every later chunk
    dit_s: list[float]  # per steady chunk: the buffer step
    decode_s: list[float]  # per steady chunk: decode + host copy
    peak_bytes: Optional[int] = None  # the device's peak memory in use (None where the backend does not say)

    @property
    def ttff_s(self) -> float:
        """Stream start call -> the first decoded frames on the host (compiled programs)."""
        return self.start_s + self.first_step_s + self.first_decode_s

    @property
    def ttff_from_step_s(self) -> float:
        """First buffer step call (the buffer already filled) -> the first decoded frames on the host."""
        return self.first_step_s + self.first_decode_s

    @property
    def ttff_with_compile_s(self) -> float:
        """``ttff_s`` plus compiling the stream start, the buffer step and the first chunk's decode."""
        return self.ttff_s + sum(self.compile_s[k] for k in ("start", "step", "decode_first"))

    @property
    def dit_ms(self) -> float:
        return 1e3 * float(np.median(self.dit_s))

    @property
    def decode_ms(self) -> float:
        return 1e3 * float(np.median(self.decode_s))

    @property
    def chunk_ms(self) -> float:
        return 1e3 * float(np.median(np.add(self.dit_s, self.decode_s)))

    @property
    def fps(self) -> float:
        """Steady-state video frames per second: frames per chunk / median seconds per chunk (step + decode)."""
        return self.frames_per_chunk / (self.chunk_ms / 1e3)

    @property
    def mean_fps(self) -> float:
        """Video frames per second over all the steady chunks together (the stalls included)."""
        return self.frames_per_chunk * len(self.dit_s) / float(np.sum(self.dit_s) + np.sum(self.decode_s))


def time_decoded_stream(denoise_fn: Callable, params, partition: Partition, cond, latent_shape, autoencoder,
                        chunks: int, *, null_cond=None, guidance_scale: float = 1.0,
                        schedule: NoiseSchedule = NoiseSchedule(), seed: int = 0) -> StreamTiming:
    """Compiles and times a stream of ``chunks`` chunks (>= 2: the first, then steady ones).

    ``denoise_fn`` / ``params``: the velocity model (``sampling.buffer.model_denoise_fn``); ``cond`` (and
    ``null_cond`` for guidance) with a leading batch axis; ``latent_shape`` [b, B, h, w, C] the buffer;
    ``autoencoder`` a streaming decoder (``init_decode_state`` / ``decode_chunk``, e.g. the Wan VAE)."""
    if chunks < 2:
        raise ValueError(f"chunks={chunks} must be >= 2 (the first chunk and at least one steady one)")
    like = jnp.zeros(latent_shape, jnp.float32)
    rng = jax.random.key(seed)
    guidance = jnp.float32(guidance_scale)
    ae, ae_params = autoencoder, autoencoder.params
    chunk_shape = (latent_shape[0], partition.c) + tuple(latent_shape[2:])

    def decode(p, state, latents):
        state, video = ae.decode_chunk(p, state, latents)
        return state, float_to_uint8(video)

    start_jit = make_stream_start(denoise_fn, partition, schedule)
    start, start_c = _compile(start_jit, params, rng, like, cond, null_cond, guidance)
    abstract_state = jax.eval_shape(start_jit, params, rng, like, cond, null_cond, guidance)[0]
    step, step_c = _compile(make_buffer_step(denoise_fn, partition, schedule), params, abstract_state, cond,
                            null_cond, guidance)
    decode_jit = jax.jit(decode, donate_argnums=(1,))
    vae_state = ae.init_decode_state(ae_params, chunk_shape)
    latents_like = jax.ShapeDtypeStruct(chunk_shape, jnp.float32)
    decode_first, first_c = _compile(decode_jit, ae_params, vae_state, latents_like)
    steady_state = jax.eval_shape(decode, ae_params, vae_state, latents_like)[0]
    decode_steady, steady_c = _compile(decode_jit, ae_params, steady_state, latents_like)
    compile_s = {"start": start_c, "step": step_c, "decode_first": first_c, "decode": steady_c}

    t0 = time.perf_counter()
    state, _ = _wait(start(params, rng, like, cond, null_cond, guidance))
    t1 = time.perf_counter()
    state, latents = _wait(step(params, state, cond, null_cond, guidance))
    t2 = time.perf_counter()
    vae_state, video = decode_first(ae_params, vae_state, latents)
    first = np.asarray(video)
    t3 = time.perf_counter()
    dit_s, decode_s, frames = [], [], None
    for _ in range(chunks - 1):
        a = time.perf_counter()
        state, latents = _wait(step(params, state, cond, null_cond, guidance))
        b = time.perf_counter()
        vae_state, video = decode_steady(ae_params, vae_state, latents)
        frames = np.asarray(video)
        dit_s.append(b - a)
        decode_s.append(time.perf_counter() - b)
    stats = jax.devices()[0].memory_stats() or {}
    return StreamTiming(compile_s, t1 - t0, t2 - t1, t3 - t2, first.shape[1], frames.shape[1], dit_s, decode_s,
                        stats.get("peak_bytes_in_use"))
