r"""Ahead-of-time compile the 4B model for real topologies on fake CPU devices: no allocation, no accelerator.

  python -m experiments.aot_compile --devices=64 --mesh=fsdp:64            # (a) the 4B train step
  python -m experiments.aot_compile --what=buffer_step --devices=1         # (b) the 4B buffer step, one device

Lowers and compiles with abstract inputs (jax.ShapeDtypeStruct with shardings), then reports the compiled
per-device memory (memory_analysis) and FLOPs (cost_analysis) beside the analytic count, and appends to
BENCHMARKS.md unless --output=''. XLA:CPU's cost model stands in for the accelerator's: memory figures are the
buffers XLA plans for this program (arguments, outputs, temporaries), which is what decides an out-of-memory.
"""
from __future__ import annotations

import os
import sys


def _early_device_count() -> int:
    for arg in sys.argv:
        if arg.startswith("--devices="):
            return int(arg.split("=", 1)[1])
    return 64


os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + f" --xla_force_host_platform_device_count={_early_device_count()}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from absl import app, flags  # noqa: E402

from experiments import benchmarking  # noqa: E402
from streamdit_jax import parallel  # noqa: E402
from streamdit_jax.models import forward_flops, get_model_config  # noqa: E402
from streamdit_jax.models.factory import abstract_model  # noqa: E402
from streamdit_jax.partition import Partition  # noqa: E402
from streamdit_jax.sampling.buffer import BufferState, make_buffer_step, model_denoise_fn  # noqa: E402
from streamdit_jax.training import steps  # noqa: E402
from streamdit_jax.configs import DataConfig, TrainConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("what", "train_step", ["train_step", "buffer_step"], "Which program to compile.")
flags.DEFINE_integer("devices", 64, "Fake CPU devices (set before jax starts).")
flags.DEFINE_string("mesh", "fsdp:64", "Mesh axes as name:size,... (one size may be -1).")
flags.DEFINE_string("model", "streamdit_4b", "Model config.")
flags.DEFINE_integer("global_batch", 64, "Train step: global batch (buffers).")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to append to ('' = print only).")

LATENT = (16, 64, 64)  # the paper's 512p buffer: [F, H, W] latent frames


def parse_mesh(text: str) -> parallel.MeshConfig:
    return parallel.MeshConfig(tuple((n, int(s)) for n, s in (part.split(":") for part in text.split(","))))


def compile_train_step(mesh):
    cfg = TrainConfig(model=get_model_config(FLAGS.model), autoencoder_factor=0, buffer_len=LATENT[0],
                      chunk_sizes=(1, 2, 4, 8, 16), batch_size=FLAGS.global_batch, total_steps=30000,
                      data=DataConfig(clip_len=LATENT[0]))
    graphdef, tx, abstract_state, shardings = steps.abstract_train_state(cfg, mesh)
    batch = {"latents": jax.ShapeDtypeStruct((FLAGS.global_batch,) + LATENT + (cfg.model.latent_channels,),
                                             jnp.bfloat16),
             "tokens": jax.ShapeDtypeStruct((FLAGS.global_batch, cfg.model.text.max_len), jnp.int32)}
    batch_sh = steps.batch_shardings(mesh, batch)
    batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sh[k]) for k, v in batch.items()}
    fn = steps.make_train_step(cfg, graphdef, tx, shardings, batch_sh)
    analytic = 3 * forward_flops(cfg.model, LATENT + (cfg.model.latent_channels,), batch=FLAGS.global_batch)
    with parallel.activate(mesh):  # only around tracing: abstract models are built outside any mesh context
        return fn.lower(abstract_state, batch, None), analytic, cfg.model  # latent batches: no autoencoder


def compile_buffer_step(mesh):
    model_cfg = get_model_config(FLAGS.model, param_dtype="bfloat16", remat=False)
    partition = Partition.from_buffer(LATENT[0], 2, 1)
    graphdef, abstract = abstract_model(model_cfg)
    params = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract,
                          parallel.state_shardings(abstract, mesh))
    rep = parallel.replicated(mesh)
    sds = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=rep)
    state = BufferState(sds((1,) + LATENT + (model_cfg.latent_channels,), jnp.float32), sds((LATENT[0],), jnp.float32),
                        sds((), jnp.int32), sds((2,), jnp.uint32))
    cond = (sds((1, model_cfg.text.max_len, model_cfg.text.width), jnp.float32),
            sds((1, model_cfg.text.max_len), jnp.int32))
    step = make_buffer_step(model_denoise_fn(graphdef), partition)
    analytic = partition.s * forward_flops(model_cfg, LATENT + (model_cfg.latent_channels,))
    with parallel.activate(mesh):
        return step.lower(params, state, cond), analytic, model_cfg


def main(argv):
    del argv
    mesh = parallel.make_mesh(parse_mesh(FLAGS.mesh))
    t0 = time.perf_counter()
    lowered, analytic, _ = (compile_train_step if FLAGS.what == "train_step" else compile_buffer_step)(mesh)
    compiled = lowered.compile()
    seconds = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    gib = lambda b: f"{b / 2**30:.2f}"
    per_device = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                  - mem.alias_size_in_bytes)
    flops_dev = float(cost.get("flops", float("nan")))
    header = ["program", "model", "mesh", "devices", "compile s", "args GiB/dev", "outputs GiB/dev",
              "temps GiB/dev", "total GiB/dev", "compiled GFLOP/dev", "analytic GFLOP total", "analytic / dev"]
    row = [FLAGS.what, FLAGS.model, dict(mesh.shape), mesh.size, round(seconds, 1), gib(mem.argument_size_in_bytes),
           gib(mem.output_size_in_bytes), gib(mem.temp_size_in_bytes), gib(per_device), flops_dev / 1e9,
           analytic / 1e9, analytic / mesh.size / 1e9]
    table = benchmarking.markdown_table(header, [row])
    print(table)
    if FLAGS.output:
        benchmarking.append_benchmark(
            FLAGS.output, f"AOT compile: {FLAGS.model} {FLAGS.what} (aot_compile)", table,
            "Compiled on fake CPU devices (no allocation). Memory from compiled.memory_analysis() per device "
            "(arguments + outputs + temporaries - aliased/donated); FLOPs from compiled.cost_analysis() (XLA:CPU's "
            "count; a while loop's body may be counted once) beside the analytic count (matmuls + attention; train = "
            "3 x forward).")


if __name__ == "__main__":
    app.run(main)
