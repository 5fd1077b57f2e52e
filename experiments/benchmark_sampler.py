r"""Streaming sampler benchmark: latency, throughput, scan vs Python loop, retraces and memory over a long stream.

  python -m experiments.benchmark_sampler --config=tiny --chunks=10000
  python -m experiments.benchmark_sampler --config=streamdit_4b --param_dtype=bfloat16 --attention_impl=cudnn \
      --chunks=200 --loop_s=1          # on a GPU (random weights)

Measured in one run, beside the matmul peak of the same run:
- time to first frame (stream start: T2V over the buffer + fill from the cached trajectory, Sec. 6), cold (with
  compilation) and warm;
- ms per macro step p50 / p99 over --chunks chunks, latent frames/s, achieved FLOP/s and its share of the peak;
- p99/p50 of a plain jitted matmul sized to the same p50 (the machine's own latency tail: the floor under the
  stream's p99/p50);
- the jitted lax.scan buffer step against a Python loop of jitted single micro steps, both at s = --loop_s;
- retraces over the stream (must be 0 after the first call) and RSS growth from chunk 100 to the end.
Appends a section to BENCHMARKS.md unless --output=''.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from experiments import benchmarking
from streamdit_jax import flow, reporting
from streamdit_jax.models import forward_flops, get_model_config
from streamdit_jax.models.factory import create_model
from streamdit_jax.partition import Partition, micro_step_table
from streamdit_jax.sampling.buffer import (BufferState, make_buffer_step, make_stream_start, model_denoise_fn,
                                          python_loop_buffer_step)
from streamdit_jax.sampling.stream_threads import GcPause, NoGcPause

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "tiny", "Model config.")
flags.DEFINE_integer("buffer_len", 16, "Buffer length B.")
flags.DEFINE_integer("chunk", 2, "Chunk size c of the stream.")
flags.DEFINE_integer("steps_per_chunk", 1, "Micro steps s of the stream.")
flags.DEFINE_integer("chunks", 10000, "Chunks streamed for the latency / retrace / memory figures.")
flags.DEFINE_integer("loop_s", 16, "s for the scan-vs-Python-loop comparison.")
flags.DEFINE_integer("loop_iters", 20, "Timed macro steps in the scan-vs-loop comparison.")
flags.DEFINE_string("dtype", None, "Compute dtype override.")
flags.DEFINE_string("param_dtype", None, "Parameter dtype override.")
flags.DEFINE_string("attention_impl", None, "Attention implementation override (xla|cudnn).")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to append to ('' = print only).")


def main(argv):
    del argv
    overrides = benchmarking.model_overrides(FLAGS.dtype, FLAGS.param_dtype, FLAGS.attention_impl)
    cfg = get_model_config(FLAGS.config, remat=False, **overrides)
    peak, peak_desc = benchmarking.matmul_peak()
    print(f"{benchmarking.machine()}\nmatmul peak: {peak / 1e9:.1f} GFLOP/s ({peak_desc})")
    graphdef, params = create_model(cfg, seed=0)
    tokens = jnp.asarray(nnx.merge(graphdef, params).tokenize(["a red circle moving left"]))
    cond = jax.jit(lambda p, t: nnx.merge(graphdef, p).encode_text(t))(params, tokens)
    h, w = benchmarking.DEFAULT_LATENT.get(FLAGS.config, (16, 16))
    like = jnp.zeros((1, FLAGS.buffer_len, h, w, cfg.latent_channels), jnp.float32)
    partition = Partition.from_buffer(FLAGS.buffer_len, FLAGS.chunk, FLAGS.steps_per_chunk)
    traces = []
    base = model_denoise_fn(graphdef)

    def denoise(*args):
        traces.append(1)  # Python side effect: runs only when jax traces
        return base(*args)

    # time to first frame: stream start (T2V + fill) and the first buffer step, cold then warm
    start, step = make_stream_start(denoise, partition), make_buffer_step(denoise, partition)
    t0 = time.perf_counter()
    state, _ = start(params, jax.random.key(0), like, cond)
    state, chunk = benchmarking.block(step(params, state, cond))
    ttff_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, _ = start(params, jax.random.key(1), like, cond)
    state, chunk = benchmarking.block(step(params, state, cond))
    ttff_warm = time.perf_counter() - t0
    traces_after_warmup = len(traces)

    def stream(state, pause):
        """FLAGS.chunks timed buffer steps; a GcPause's periodic collection is inside the timed interval."""
        latencies, rss_at_100 = [], None
        with pause:
            for i in range(FLAGS.chunks):
                t = time.perf_counter()
                state, chunk = benchmarking.block(step(params, state, cond))
                pause.tick()
                latencies.append(time.perf_counter() - t)
                if i == 100:
                    rss_at_100 = reporting.rss_bytes()
        return state, np.asarray(latencies), rss_at_100, reporting.rss_bytes()

    state, lat, rss_at_100, rss_end = stream(state, NoGcPause())
    p50, p99 = np.percentile(lat, 50), np.percentile(lat, 99)
    # the same stream with Python's cyclic GC kept out of the chunks (Streamer(pause_gc=True))
    state, lat_paused, _, _ = stream(state, GcPause())
    p50_paused, p99_paused = np.percentile(lat_paused, 50), np.percentile(lat_paused, 99)
    flops = partition.s * forward_flops(cfg, like.shape[1:])
    retraces = len(traces) - traces_after_warmup

    # the machine's own tail: a plain jitted matmul of the same length, no stream around it
    floor_ratio, floor_p50 = benchmarking.latency_jitter_floor(p50, peak, min(FLAGS.chunks, 3000))

    # scan vs Python loop at s = loop_s
    loop_partition = Partition(0, partition.N, partition.c, FLAGS.loop_s)
    table = micro_step_table(loop_partition)
    scan_step = make_buffer_step(base, loop_partition, donate=False)
    loop_step = python_loop_buffer_step(base, loop_partition, table)
    fresh = BufferState(flow.gaussian_noise(jax.random.key(2), like.shape),
                        jnp.asarray(loop_partition.progress(0), jnp.float32), jnp.zeros((), jnp.int32),
                        jax.random.key(3))
    scan_ms = 1e3 * np.median(benchmarking.time_calls(lambda: scan_step(params, fresh, cond), FLAGS.loop_iters))
    loop_ms = 1e3 * np.median(benchmarking.time_calls(lambda: loop_step(params, fresh, cond), FLAGS.loop_iters))

    header = ["config", "partition", "TTFF cold s", "TTFF warm ms", "p50 ms", "p99 ms", "p99/p50", "latent frames/s",
              "p99/p50 GC paused", "p99/p50 plain matmul (floor)", "GFLOP/s", "of peak", f"scan s={FLAGS.loop_s} ms", "Python loop ms", "scan speed-up",
              f"retraces ({FLAGS.chunks} chunks)", "RSS growth"]
    growth = (rss_end - rss_at_100) / rss_at_100 if rss_at_100 else float("nan")
    row = [FLAGS.config, f"K={partition.K} N={partition.N} c={partition.c} s={partition.s}", round(ttff_cold, 2),
           1e3 * ttff_warm, 1e3 * p50, 1e3 * p99, p99 / p50, partition.c / p50, p99_paused / p50_paused,
           f"{floor_ratio:.3f} ({1e3 * floor_p50:.2f} ms)", flops / p50 / 1e9,
           f"{100 * flops / p50 / peak:.1f}%", scan_ms, loop_ms, f"{loop_ms / scan_ms:.2f}x", retraces,
           f"{100 * growth:.2f}%"]
    table_md = benchmarking.markdown_table(header, [row])
    print(table_md)
    if FLAGS.output:
        benchmarking.append_benchmark(
            FLAGS.output, "Streaming sampler (benchmark_sampler)", table_md,
            f"Matmul peak measured in the same run: {peak / 1e9:.1f} GFLOP/s ({peak_desc}). TTFF = stream start "
            f"(T2V over the buffer, T={partition.T} steps, plus fill) + first buffer step. Latencies per macro step "
            f"with the result waited for. RSS growth from chunk 100 to chunk {FLAGS.chunks}. 'GC paused': a second "
            f"stream of {FLAGS.chunks} chunks inside streamdit_jax.sampling.stream_threads.GcPause (no automatic cyclic GC; "
            f"gc.collect(1) every 1000 chunks, timed). 'plain matmul (floor)': p99/p50 of one jitted float32 matmul "
            f"sized to the stream's p50, called {min(FLAGS.chunks, 3000)} times in the same run: the machine's own "
            f"latency tail, the floor under the stream's.")


if __name__ == "__main__":
    app.run(main)
