r"""Buffer-step speed: ms per macro step and achieved FLOP/s beside the matmul peak measured in the same run.

  python -m experiments.benchmark_buffer_step --configs=tiny,small
  python -m experiments.benchmark_buffer_step --configs=streamdit_4b --param_dtype=bfloat16 \
      --attention_impl=cudnn            # on a GPU: the paper's distilled setting K=0, c=2, N=8, s=1

Weights are random (speed does not depend on them). FLOPs are analytic (models.dit.forward_flops) times s model
evaluations per macro step (twice the batch with guidance). A row is appended to BENCHMARKS.md unless --output=''.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from experiments import benchmarking
from streamdit_jax import parallel
from streamdit_jax.models import forward_flops, get_model_config
from streamdit_jax.models.factory import create_model
from streamdit_jax.partition import Partition
from streamdit_jax.sampling.buffer import BufferState, make_buffer_step, model_denoise_fn
from streamdit_jax.flow import gaussian_noise

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["tiny", "small"], "Model configs to benchmark.")
flags.DEFINE_integer("buffer_len", 16, "Buffer length B in latent frames.")
flags.DEFINE_integer("chunk", 2, "Chunk size c.")
flags.DEFINE_integer("steps_per_chunk", 1, "Micro steps s per macro step.")
flags.DEFINE_integer("reference_frames", 0, "K clean reference frames.")
flags.DEFINE_bool("guidance", False, "Classifier-free guidance (conditional + unconditional in one batch).")
flags.DEFINE_integer("batch", 1, "Streams run in parallel.")
flags.DEFINE_integer("iters", 10, "Timed macro steps.")
flags.DEFINE_string("dtype", None, "Compute dtype override (float32|bfloat16).")
flags.DEFINE_string("param_dtype", None, "Parameter dtype override (float32|bfloat16).")
flags.DEFINE_string("attention_impl", None, "Attention implementation override (xla|cudnn).")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to append the table to ('' = print only).")


def bench_config(name: str, peak: float):
    overrides = benchmarking.model_overrides(FLAGS.dtype, FLAGS.param_dtype, FLAGS.attention_impl)
    cfg = get_model_config(name, remat=False, **overrides)
    partition = Partition.from_buffer(FLAGS.buffer_len, FLAGS.chunk, FLAGS.steps_per_chunk, FLAGS.reference_frames)
    h, w = benchmarking.DEFAULT_LATENT.get(name, (16, 16))
    latent = (FLAGS.batch, partition.B, h, w, cfg.latent_channels)
    graphdef, params = create_model(cfg, seed=0)
    n_params = parallel.num_params(params)
    from flax import nnx  # local: the text encoder runs once, as in a stream
    model = nnx.merge(graphdef, params)
    tokens = jnp.asarray(model.tokenize(["a red circle moving left"] * FLAGS.batch))
    cond = jax.jit(lambda p, t: nnx.merge(graphdef, p).encode_text(t))(params, tokens)
    null = jax.tree.map(jnp.zeros_like, cond) if FLAGS.guidance else None
    step = make_buffer_step(model_denoise_fn(graphdef), partition)
    state = BufferState(gaussian_noise(jax.random.key(0), latent, jnp.float32),
                        jnp.asarray(partition.progress(0), jnp.float32), jnp.zeros((), jnp.int32), jax.random.key(1))
    t0 = time.perf_counter()
    state, chunk = benchmarking.block(step(params, state, cond, null, jnp.float32(3.0)))
    compile_s = time.perf_counter() - t0
    holder = {"state": state}

    def run():
        holder["state"], chunk = step(params, holder["state"], cond, null, jnp.float32(3.0))
        return chunk

    times = benchmarking.time_calls(run, FLAGS.iters, warmup=1)
    ms = 1e3 * float(np.median(times))
    evals = partition.s * (2 if FLAGS.guidance else 1)
    flops = evals * forward_flops(cfg, latent[1:], batch=FLAGS.batch)
    achieved = flops / (ms / 1e3)
    return [name, f"{n_params / 1e6:.1f}M", "x".join(map(str, latent[1:])), cfg.dtype,
            cfg.attention_impl or "xla", f"K={partition.K} N={partition.N} c={partition.c} s={partition.s}",
            "yes" if FLAGS.guidance else "no", round(compile_s, 1), ms, 1e3 * float(np.percentile(times, 99)),
            partition.c * FLAGS.batch / (ms / 1e3), flops / 1e9, achieved / 1e9, f"{100 * achieved / peak:.1f}%"]


def main(argv):
    del argv
    peak, peak_desc = benchmarking.matmul_peak()
    print(f"{benchmarking.machine()}\nmatmul peak: {peak / 1e9:.1f} GFLOP/s ({peak_desc})")
    header = ["config", "params", "latent FxHxWxC", "dtype", "attention", "partition", "CFG", "compile s",
              "ms/macro step (p50)", "p99 ms", "latent frames/s", "GFLOP/step", "GFLOP/s", "of peak"]
    rows = []
    for name in FLAGS.configs:
        rows.append(bench_config(name, peak))
        print(benchmarking.markdown_table(header, rows[-1:]))
    table = benchmarking.markdown_table(header, rows)
    print(table)
    if FLAGS.output:
        benchmarking.append_benchmark(
            FLAGS.output, "Buffer step (benchmark_buffer_step)", table,
            f"Matmul peak measured in the same run: {peak / 1e9:.1f} GFLOP/s ({peak_desc}). FLOPs are analytic "
            f"(forward_flops x s model evaluations per macro step); random weights.")


if __name__ == "__main__":
    app.run(main)
