"""Ahead-of-time programs: the train step and the buffer step lowered with abstract inputs (jax.ShapeDtypeStruct
carrying their shardings) for any model preset, latent size and mesh, then compiled; nothing is allocated, so the
topology can be a real one faked on CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=N).
``experiments.aot_compile`` is the command line; ``compile_report`` reads the compiled program's per-device memory
(memory_analysis) and FLOPs (cost_analysis)."""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from streamdit_jax import parallel
from streamdit_jax.configs import DataConfig, TrainConfig
from streamdit_jax.models.config import ModelConfig
from streamdit_jax.models.factory import abstract_model, forward_flops
from streamdit_jax.models.text import is_trainable
from streamdit_jax.partition import Partition
from streamdit_jax.sampling.buffer import BufferState, make_buffer_step, model_denoise_fn

PRECOMPUTED_DTYPE = jnp.float16  # what precomputed latents and caption embeddings are stored as (data.latent_clips)


def parse_latent(text: str) -> tuple[int, int, int]:
    """"FxHxW" -> (F, H, W) latent frames x rows x columns; ValueError naming the text otherwise."""
    try:
        size = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"latent size {text!r} must be FxHxW (three integers >= 1, e.g. 16x60x104)")
    return size


def chunk_sizes(frames: int) -> tuple[int, ...]:
    """The training chunk mix of a buffer of ``frames``: its power-of-two divisors and itself (16: 1, 2, 4, 8, 16)."""
    return tuple(sorted({2 ** i for i in range(frames.bit_length()) if frames % 2 ** i == 0} | {frames}))


def _sds(shape, dtype, sharding):
    return jax.ShapeDtypeStruct(tuple(shape), dtype, sharding=sharding)


def train_config(model: ModelConfig, latent, global_batch: int) -> TrainConfig:
    """The train step's config for batches of precomputed latents [b, F, H, W, C] (the autoencoder ran offline);
    the text precomputed too when the model's text encoder is frozen (umT5 for Wan), else encoded in the step."""
    text_source = "on_the_fly" if is_trainable(model.text) else "precomputed"
    return TrainConfig(model=model, autoencoder_factor=0, buffer_len=latent[0], chunk_sizes=chunk_sizes(latent[0]),
                       batch_size=global_batch, total_steps=30000,
                       data=DataConfig(clip_len=latent[0], text_source=text_source))


def train_batch(cfg: TrainConfig, latent) -> dict:
    """Abstract (shapes, dtypes) batch of the train step: latents, and the prompts as tokens or as precomputed
    embeddings + mask (with the null prompt's row for caption dropout, as the data pipeline adds it)."""
    m, b = cfg.model, cfg.batch_size
    batch = {"latents": jax.ShapeDtypeStruct((b,) + tuple(latent) + (m.latent_channels,), PRECOMPUTED_DTYPE)}
    if cfg.data.text_source == "on_the_fly":
        batch["tokens"] = jax.ShapeDtypeStruct((b, m.text.max_len), jnp.int32)
        return batch
    batch["text"] = jax.ShapeDtypeStruct((b, m.text.max_len, m.text.width), PRECOMPUTED_DTYPE)
    batch["text_mask"] = jax.ShapeDtypeStruct((b, m.text.max_len), jnp.int32)
    if cfg.text_dropout > 0:
        batch["null_text"] = jax.ShapeDtypeStruct((1, m.text.max_len, m.text.width), PRECOMPUTED_DTYPE)
        batch["null_text_mask"] = jax.ShapeDtypeStruct((1, m.text.max_len), jnp.int32)
    return batch


def lower_train_step(model: ModelConfig, mesh, latent, global_batch: int):
    """(lowered train step, analytic FLOPs of the global step = 3 x forward) on ``mesh``."""
    from streamdit_jax.training import steps  # optax, orbax: only when a train step is asked for

    cfg = train_config(model, latent, global_batch)
    graphdef, tx, abstract_state, shardings = steps.abstract_train_state(cfg, mesh)
    batch = train_batch(cfg, latent)
    batch_sh = steps.batch_shardings(mesh, batch)
    batch = {k: _sds(v.shape, v.dtype, batch_sh[k]) for k, v in batch.items()}
    fn = steps.make_train_step(cfg, graphdef, tx, shardings, batch_sh)
    analytic = 3 * forward_flops(model, tuple(latent) + (model.latent_channels,), batch=global_batch)
    with parallel.activate(mesh):  # only around tracing: abstract models are built outside any mesh context
        return fn.lower(abstract_state, batch, None), analytic  # no frozen params: latents and text precomputed


def lower_buffer_step(model: ModelConfig, mesh, latent, chunk: int = 2, steps_per_chunk: int = 1):
    """(lowered buffer step of one stream without guidance, analytic FLOPs of one macro step) on ``mesh``; the
    partition K=0, c=``chunk``, s=``steps_per_chunk`` (the paper's distilled setting: c=2, s=1)."""
    partition = Partition.from_buffer(latent[0], chunk, steps_per_chunk)
    graphdef, abstract = abstract_model(model)
    params = jax.tree.map(lambda a, s: _sds(a.shape, a.dtype, s), abstract, parallel.state_shardings(abstract, mesh))
    rep = parallel.replicated(mesh)
    state = BufferState(_sds((1,) + tuple(latent) + (model.latent_channels,), jnp.float32, rep),
                        _sds((latent[0],), jnp.float32, rep), _sds((), jnp.int32, rep), _sds((2,), jnp.uint32, rep))
    cond = (_sds((1, model.text.max_len, model.text.width), model.compute_dtype, rep),
            _sds((1, model.text.max_len), jnp.int32, rep))
    step = make_buffer_step(model_denoise_fn(graphdef), partition)
    analytic = partition.s * forward_flops(model, tuple(latent) + (model.latent_channels,))
    with parallel.activate(mesh):
        return step.lower(params, state, cond), analytic


@dataclasses.dataclass(frozen=True)
class CompileReport:
    """A compiled program's per-device bytes (XLA's plan: arguments, outputs, temporaries, aliased = donated
    arguments reused as outputs) and XLA's FLOP count (a while loop's body counted once), and the compile time."""

    seconds: float
    argument_bytes: int
    output_bytes: int
    temp_bytes: int
    alias_bytes: int
    flops: float

    @property
    def total_bytes(self) -> int:
        """Per-device peak as XLA plans it: arguments + outputs + temporaries - aliased (donated) buffers."""
        return self.argument_bytes + self.output_bytes + self.temp_bytes - self.alias_bytes


def compile_report(lowered) -> CompileReport:
    """Compiles ``lowered`` and reads its memory and cost analyses."""
    t0 = time.perf_counter()
    compiled = lowered.compile()
    seconds = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return CompileReport(seconds, int(mem.argument_size_in_bytes), int(mem.output_size_in_bytes),
                         int(mem.temp_size_in_bytes), int(mem.alias_size_in_bytes),
                         float((cost or {}).get("flops", float("nan"))))
