"""Sample GIFs during training: a short stream from the EMA parameters through the real streaming path."""
from __future__ import annotations

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax import parallel
from streamdit_jax.pixels import float_to_frames
from streamdit_jax.models.conditioned import text_encoder_of, text_params_of
from streamdit_jax.partition import Partition
from streamdit_jax.sampling.buffer import make_buffer_step, make_stream_start, model_denoise_fn
from streamdit_jax.configs import TrainConfig

PREVIEW_PROMPTS = ("a red circle moving right", "a blue square moving up")


class Preview:
    """Streams 2 buffer lengths for each preview prompt (stream start + macro steps), side by side in one GIF."""

    def __init__(self, cfg: TrainConfig, graphdef, mesh, prompts=PREVIEW_PROMPTS):
        chunk = 2 if 2 in cfg.chunk_sizes else max(cfg.chunk_sizes)
        partition = Partition.from_buffer(cfg.buffer_len, chunk, 1, cfg.reference_frames)
        partition = Partition(partition.K, partition.N, partition.c, max(1, cfg.sample_steps // partition.N))
        self.cfg, self.graphdef, self.partition, self.prompts = cfg, graphdef, partition, list(prompts)
        self.autoencoder = cfg.make_autoencoder()
        self.decode = jax.jit(self.autoencoder.decode)
        denoise = model_denoise_fn(graphdef)
        # multi-process: each program is compiled by every process before any runs it (parallel.compile_then_sync)
        self.start = parallel.compile_then_sync(make_stream_start(denoise, partition, cfg.schedule), "preview_start")
        self.step = parallel.compile_then_sync(make_buffer_step(denoise, partition, cfg.schedule, donate=False),
                                               "preview_step")
        self.text_encoder = text_encoder_of(cfg.model)
        self.encode = parallel.compile_then_sync(jax.jit(self.text_encoder.encode), "preview_encode")
        self.tokens = jnp.asarray(self.text_encoder.tokenize(self.prompts))

    def frames(self, params, seed: int = 0) -> np.ndarray:
        """uint8 [prompts, frames, H, W, 3]."""
        like = jnp.zeros((len(self.prompts), self.partition.B) + self.autoencoder.latent_shape(
            (1, *self.cfg.data.frame_hw, 3))[1:], jnp.float32)
        cond = self.encode(text_params_of(self.text_encoder, params), self.tokens)
        state, first = self.start(params, jax.random.PRNGKey(seed), like, cond)
        chunks = [first]
        for _ in range(2 * self.partition.B // self.partition.c):
            state, chunk = self.step(params, state, cond)
            chunks.append(chunk)
        latents = jnp.concatenate(chunks, axis=1)
        if jax.process_count() > 1:  # parameters sharded across processes: every process computed its part
            from jax.experimental import multihost_utils
            latents = multihost_utils.process_allgather(latents, tiled=True)
        return float_to_frames(self.decode(self.autoencoder.params, jnp.asarray(latents)))

    def write_gif(self, params, path: str, write: bool = True) -> str:
        """Streams the preview (every process must call this: it is one program over the whole mesh) and writes
        the GIF where ``write`` (process 0)."""
        video = self.frames(params)
        if write:
            tiled = np.concatenate(list(video), axis=2)  # prompts side by side
            iio.imwrite(path, tiled, duration=125, loop=0)
        return path

