r"""Ahead-of-time compile umT5-XXL's encoder (Wan2.1's text encoder, ``models.t5.UMT5_XXL``) for a mesh of fake CPU
devices: no weights, no allocation, no accelerator.

  python -m experiments.aot_text_encoder --devices=8 --mesh=fsdp:8 --batch=8   # 8 prompts x 512 tokens, bf16

Lowers ``hf_checkpoint.masked_states`` (the encoder with the attention mask, zeros past each prompt; what
``T5TextEncoder.encode`` runs) with abstract bf16 parameters sharded by their logical axis names
(``models.t5.abstract_t5`` under ``parallel.LOGICAL_RULES``) and the token batch sharded over the batch axes, then
reports XLA's per-device memory plan (memory_analysis: arguments, outputs, temporaries) and FLOPs beside the
analytic count; appends to BENCHMARKS.md unless --output=''. XLA:CPU computes bf16 dots in float32 on float32
copies of the weights, and counts those copies as temporaries: bf16 temporaries here overstate an accelerator's.
"""
from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from experiments import benchmarking
from streamdit_jax import parallel
from streamdit_jax.models import t5
from streamdit_jax.models.hf_checkpoint import masked_states

FLAGS = flags.FLAGS
flags.DEFINE_integer("devices", 8, "Fake CPU devices.")
flags.DEFINE_string("mesh", "fsdp:8", "Mesh axes as name:size,... (one size may be -1).")
flags.DEFINE_integer("batch", 8, "Prompts per encoder call.")
flags.DEFINE_integer("max_len", 512, "Tokens per prompt (Wan2.1: 512).")
flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float32"], "Parameter and compute dtype.")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to append to ('' = print only).")


def fake_cpu_devices(count: int) -> None:
    """Asks for ``count`` CPU devices. jax reads XLA_FLAGS when its backend starts (the first device query), not at
    import, so this works from main() as long as nothing has touched a device yet; checked after."""
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}"
    jax.config.update("jax_platforms", "cpu")
    if jax.device_count() != count:
        raise SystemExit(f"asked for {count} fake CPU devices, jax has {jax.device_count()} (a device was used "
                         "before main, or XLA_FLAGS already fixes the count)")


def main(argv):
    del argv
    fake_cpu_devices(FLAGS.devices)
    mesh = parallel.make_mesh(parallel.MeshConfig.parse(FLAGS.mesh))
    cfg, shape = t5.UMT5_XXL, (FLAGS.batch, FLAGS.max_len)
    graphdef, params = t5.abstract_t5(cfg, jnp.dtype(FLAGS.dtype), mesh=mesh)
    tokens = jax.ShapeDtypeStruct(shape, jnp.int32, sharding=parallel.batch_sharding(mesh, 2, shape=shape))
    encode = jax.jit(functools.partial(masked_states, graphdef, pad_id=cfg.pad_token_id))
    start = time.perf_counter()
    with parallel.activate(mesh):
        compiled = encode.lower(params, tokens).compile()
    seconds = time.perf_counter() - start
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    count = parallel.num_params(params)
    weights = sum(p.size * p.dtype.itemsize for p in jax.tree.leaves(params))
    sizes = {"args": mem.argument_size_in_bytes, "outputs": mem.output_size_in_bytes,
             "temps": mem.temp_size_in_bytes, "aliased": mem.alias_size_in_bytes}
    total = sizes["args"] + sizes["outputs"] + sizes["temps"] - sizes["aliased"]
    header = (["program", "mesh", "devices", "prompts x tokens", "dtype", "params", "weights GiB (all)", "compile s"]
              + [f"{k} GiB/dev" for k in sizes] + ["total GiB/dev", "compiled GFLOP/dev", "analytic GFLOP total"])
    row = (["umt5_xxl encode", dict(mesh.shape), mesh.size, f"{shape[0]} x {shape[1]}", FLAGS.dtype,
            f"{count / 1e9:.2f}B", f"{weights / 2**30:.2f}", round(seconds, 1)]
           + [f"{v / 2**30:.3f}" for v in sizes.values()]
           + [f"{total / 2**30:.3f}", round(float(cost.get("flops", float("nan"))) / 1e9, 1),
              round(t5.encoder_flops(cfg, *shape) / 1e9, 1)])
    table = benchmarking.markdown_table(header, [row])
    print(table)
    if FLAGS.output:
        benchmarking.append_benchmark(
            FLAGS.output, "AOT compile: umT5-XXL text encoder (aot_text_encoder)", table,
            "Compiled on fake CPU devices (no allocation). Memory from compiled.memory_analysis() per device "
            "(arguments + outputs + temporaries - aliased); parameters sharded by their logical axis names, tokens "
            "over the batch axes. FLOPs from compiled.cost_analysis() beside the analytic count (matmuls + "
            "attention scores and values). XLA:CPU runs bf16 dots in float32 on float32 copies of the weights, "
            "which its temporaries include: an accelerator with bf16 matmuls makes no such copies (compare "
            "--dtype=float32, whose temporaries are activations and gathered layers only).")


if __name__ == "__main__":
    app.run(main)
