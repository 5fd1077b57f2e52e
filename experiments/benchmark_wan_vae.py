r"""Wan2.1 VAE speed and memory (models.wan_vae) at the real size (base_dim 96, z_dim 16, levels [1, 2, 4, 4], two
temporal levels), random weights:

  python -m experiments.benchmark_wan_vae                      # CPU: 64x64 and 256x256 timed, 480x832 AOT only
  python -m experiments.benchmark_wan_vae --sizes=480x832 --aot_sizes= --dtype=bfloat16    # on a GPU

Timed: the steady-state stream chunk (every chunk after the first): ``decode_chunk`` of c latent frames (4c video
frames) and ``encode_chunk`` of 4c video frames, each jitted and compiled ahead of time on the carried state's shapes,
then run ``--iters`` times; encode is reported per video frame. FLOPs are XLA's count of the compiled chunk.
AOT: the same decode chunk lowered and compiled at each ``--aot_sizes`` in ``--aot_dtype`` with abstract inputs
(nothing allocated): XLA's planned argument / output / temporary bytes, and the carried decode state's size
(``jax.eval_shape`` of init_decode_state). A section is appended to BENCHMARKS.md unless --output=''.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from experiments import benchmarking
from streamdit_jax.models import wan_vae

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64x64", "256x256"], "Video frame sizes HxW to time (multiples of 8).")
flags.DEFINE_list("aot_sizes", ["480x832"], "Video frame sizes HxW to compile ahead of time only.")
flags.DEFINE_integer("chunk", 2, "Latent frames per stream chunk (c): 4c video frames.")
flags.DEFINE_integer("batch", 1, "Streams decoded together.")
flags.DEFINE_integer("iters", 2, "Timed runs of each steady-state chunk.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute and parameter dtype of the timed runs.")
flags.DEFINE_enum("aot_dtype", "bfloat16", ["float32", "bfloat16"], "Compute and parameter dtype of the AOT runs.")
flags.DEFINE_enum("aot_conv_impl", "3d", list(wan_vae.CONV_IMPLS),
                  "Causal conv implementation of the AOT runs (3d: the program a GPU runs).")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to append to ('' = print only).")

GIB = 2 ** 30


def parse_size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def steady_inputs(ae, params, kind: str, size: tuple[int, int]):
    """(function, abstract state, abstract chunk) of a steady-state chunk: the state after a stream's first chunk."""
    h, w = size
    c, b = FLAGS.chunk, FLAGS.batch
    if kind == "decode":
        chunk = jax.ShapeDtypeStruct((b, c, h // 8, w // 8, ae.config.z_dim), jnp.float32)
        init, fn = ae.init_decode_state, ae.decode_chunk
    else:
        chunk = jax.ShapeDtypeStruct((b, 4 * c, h, w, 3), jnp.float32)
        init, fn = ae.init_encode_state, ae.encode_chunk
    state = jax.eval_shape(lambda p: init(p, chunk.shape), params)
    return fn, wan_vae.StreamState(state.caches, started=True), chunk


def compile_steady(ae, params, kind: str, size: tuple[int, int]):
    """(compiled steady-state chunk, abstract state, abstract chunk, compile seconds)."""
    fn, state, chunk = steady_inputs(ae, params, kind, size)
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(params, state, chunk).compile()
    return compiled, state, chunk, time.perf_counter() - t0


def compiled_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def time_steady(ae, kind: str, size: tuple[int, int]) -> tuple[float, float, float]:
    """(compile s, median ms per steady-state chunk, XLA GFLOP per chunk)."""
    compiled, state, chunk, compile_s = compile_steady(ae, ae.params, kind, size)
    zeros = lambda s: jnp.zeros(s.shape, s.dtype)
    state, x = jax.tree.map(zeros, state), zeros(chunk)
    times = benchmarking.time_calls(lambda: compiled(ae.params, state, x), FLAGS.iters, warmup=0)
    return compile_s, 1e3 * float(np.median(times)), compiled_flops(compiled) / 1e9


def timed_row(ae, size: tuple[int, int]) -> list:
    c = FLAGS.chunk
    dec_compile, dec_ms, dec_gflop = time_steady(ae, "decode", size)
    print(f"{size}: decode chunk {dec_ms:.1f} ms", flush=True)
    enc_compile, enc_ms, enc_gflop = time_steady(ae, "encode", size)
    print(f"{size}: encode chunk {enc_ms:.1f} ms", flush=True)
    frames = 4 * c * FLAGS.batch
    return [f"{size[0]}x{size[1]}", f"{size[0] // 8}x{size[1] // 8}", FLAGS.dtype, round(dec_compile, 1), dec_ms,
            frames / (dec_ms / 1e3), dec_gflop, dec_gflop / (dec_ms / 1e3), round(enc_compile, 1),
            enc_ms / frames, enc_gflop / (enc_ms / 1e3)]


def aot_row(size: tuple[int, int]) -> list:
    dtype = jnp.dtype(FLAGS.aot_dtype)
    cfg = wan_vae.WAN21_VAE
    graphdef, params = wan_vae.abstract_wan_vae(cfg, dtype, conv_impl=FLAGS.aot_conv_impl)
    ae = wan_vae.WanVideoAutoencoder(cfg, graphdef, params)
    compiled, state, _, compile_s = compile_steady(ae, params, "decode", size)
    mem = compiled.memory_analysis()
    print(f"{size}: decode chunk compiled AOT in {compile_s:.1f} s", flush=True)
    return [f"{size[0]}x{size[1]}", FLAGS.aot_dtype, FLAGS.aot_conv_impl, round(compile_s, 1),
            mem.argument_size_in_bytes / GIB, wan_vae.state_bytes(state) / GIB, mem.output_size_in_bytes / GIB,
            mem.temp_size_in_bytes / GIB, compiled_flops(compiled) / 1e9]


def main(argv):
    del argv
    print(benchmarking.machine(), flush=True)
    cfg = wan_vae.WAN21_VAE
    dtype = jnp.dtype(FLAGS.dtype)
    sections = []
    if FLAGS.sizes:
        ae = wan_vae.WanVideoAutoencoder.random(cfg, seed=0, dtype=dtype)
        n_params = sum(x.size for x in jax.tree.leaves(ae.params))
        header = ["video HxW", "latent hxw", "dtype", "decode compile s", f"decode ms/chunk (c={FLAGS.chunk})",
                  "decoded frames/s", "decode GFLOP/chunk", "decode GFLOP/s", "encode compile s",
                  "encode ms/frame", "encode GFLOP/s"]
        rows = [timed_row(ae, parse_size(s)) for s in FLAGS.sizes]
        sections.append(benchmarking.markdown_table(header, rows))
        print(sections[-1], flush=True)
    else:
        n_params = None
    if FLAGS.aot_sizes:
        header = ["video HxW", "dtype", "conv", "decode compile s", "args GiB", "of which state GiB", "outputs GiB",
                  "temps GiB", "decode GFLOP/chunk"]
        sections.append(benchmarking.markdown_table(header, [aot_row(parse_size(s)) for s in FLAGS.aot_sizes]))
        print(sections[-1], flush=True)
    notes = (f"Wan2.1 VAE at its real size{f' ({n_params / 1e6:.1f}M parameters)' if n_params else ''}, random "
             f"weights, batch {FLAGS.batch}. Timed: steady-state stream chunks (after the first; the carried caches "
             f"as inputs), c={FLAGS.chunk} latent frames = {4 * FLAGS.chunk} video frames per chunk, median of "
             f"{FLAGS.iters} runs after an AOT compile; GFLOP: XLA's cost analysis of the compiled chunk. AOT: the "
             "steady-state decode chunk compiled with abstract inputs; 'args' = the decoder's parameters (jit drops "
             "the unused encoder's) + carried state + latents, 'state' = the causal convs' caches carried from chunk "
             "to chunk (jax.eval_shape of init_decode_state). Timed runs use the default causal conv (on CPU: "
             "per-frame 2D convolutions summed over the time taps).")
    print(notes)
    if FLAGS.output:
        benchmarking.append_benchmark(FLAGS.output, "Wan2.1 VAE streaming encode / decode (benchmark_wan_vae)",
                                      "\n\n".join(sections), notes)


if __name__ == "__main__":
    app.run(main)
