r"""Ahead-of-time compile a model's train step or buffer step for real topologies on fake CPU devices: no
allocation, no accelerator.

  python -m experiments.aot_compile --devices=64 --mesh=fsdp:64            # the StreamDiT 4B train step
  python -m experiments.aot_compile --what=buffer_step --devices=1 --mesh=data:1   # its buffer step, one device
  python -m experiments.aot_compile --model=wan2.1_1.3b --latent=16x60x104 --devices=64 --mesh=fsdp:16,context:4 \
      --global_batch=16                                                    # Wan2.1-1.3B at 480x832 video
  python -m experiments.aot_compile --model=wan2.1_14b --latent=16x60x104 --devices=256 --mesh=fsdp:64,context:4 \
      --global_batch=64
  python -m experiments.aot_compile --model=wan2.1_1.3b --latent=16x60x104 --what=buffer_step --devices=1 \
      --mesh=data:1

Lowers and compiles with abstract inputs (``streamdit_jax.aot``), then reports the compiled per-device memory
(memory_analysis) and FLOPs (cost_analysis) beside the analytic count, and appends to BENCHMARKS.md unless
--output=''. XLA:CPU's cost model stands in for the accelerator's: memory figures are the buffers XLA plans for this
program (arguments, outputs, temporaries), which is what decides an out-of-memory. Wan models compile with
attention_impl "chunked" by default (XLA attention in query blocks: XLA:CPU has no flash attention kernel, and the
plain path would plan every layer's [heads, T, T] scores); on a GPU the cuDNN flash kernel takes its place.
"""
from __future__ import annotations

import os
import sys


def _early_device_count() -> int:
    for arg in sys.argv:
        if arg.startswith("--devices="):
            return int(arg.split("=", 1)[1])
    return 64


HOISTING = "--xla_disable_hlo_passes=while-loop-invariant-code-motion"  # see --loop_invariant_motion
_no_motion = any(a == "--noloop_invariant_motion" or a.lower() in ("--loop_invariant_motion=false",
                                                                    "--loop_invariant_motion=0",
                                                                    "--loop_invariant_motion=f") for a in sys.argv)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + (" " + HOISTING if _no_motion else "")
                           + f" --xla_force_host_platform_device_count={_early_device_count()}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import time  # noqa: E402

from absl import app, flags  # noqa: E402

from experiments import benchmarking  # noqa: E402
from streamdit_jax import aot, parallel  # noqa: E402
from streamdit_jax.models import get_model_config  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("what", "train_step", ["train_step", "buffer_step"], "Which program to compile.")
flags.DEFINE_integer("devices", 64, "Fake CPU devices (set before jax starts).")
flags.DEFINE_string("mesh", "fsdp:64", "Mesh axes as name:size,... (one size may be -1).")
flags.DEFINE_string("model", "streamdit_4b", "Model config: a preset of models.config.MODEL_CONFIGS or an alias "
                    "(wan2.1_1.3b, wan2.1_14b).")
flags.DEFINE_string("latent", "16x64x64", "Latent buffer FxHxW (latent frames x rows x columns; channels come from "
                    "the model). 16x64x64: the paper's 512p buffer. 480x832 video is 16x60x104 for the Wan VAE (8x "
                    "spatial; patch 1x2x2 -> a 30x52 token grid, 24,960 tokens for 16 frames).")
flags.DEFINE_integer("global_batch", 64, "Train step: global batch (buffers).")
flags.DEFINE_integer("chunk", 2, "Buffer step: chunk size c (K=0, s=1: the paper's distilled setting).")
flags.DEFINE_string("attention_impl", "auto", "Attention implementation: auto (chunked for Wan, the preset's "
                    "otherwise) | xla | cudnn (GPU only) | chunked | chunked:N (N queries per block).")
flags.DEFINE_bool("loop_invariant_motion", True, "false: compile with XLA_FLAGS=" + HOISTING + ". XLA:CPU runs "
                  "bfloat16 dots in float32 and hoists the float32 copy of every scanned layer's weights out of the "
                  "layer loop (all layers at once: twice the bf16 weights' bytes in temporaries); without the pass it "
                  "converts one layer at a time, nearer what a GPU (native bf16 dots) plans.")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to append to ('' = print only).")


def model_config():
    overrides = {} if FLAGS.what == "train_step" else {"param_dtype": "bfloat16", "remat": False}
    impl = FLAGS.attention_impl
    if impl == "auto":
        impl = "chunked" if get_model_config(FLAGS.model).arch == "wan" else None
    if impl is not None:
        overrides["attention_impl"] = None if impl == "xla" else impl
    return get_model_config(FLAGS.model, **overrides)


def main(argv):
    del argv
    mesh = parallel.make_mesh(parallel.MeshConfig.parse(FLAGS.mesh))
    latent = aot.parse_latent(FLAGS.latent)
    cfg = model_config()
    t0 = time.perf_counter()
    if FLAGS.what == "train_step":
        lowered, analytic = aot.lower_train_step(cfg, mesh, latent, FLAGS.global_batch)
    else:
        lowered, analytic = aot.lower_buffer_step(cfg, mesh, latent, chunk=FLAGS.chunk)
    lower_s = time.perf_counter() - t0
    report = aot.compile_report(lowered)
    gib = lambda b: f"{b / 2**30:.2f}"
    header = ["program", "model", "latent", "attention", "loop motion", "mesh", "devices", "batch", "compile s",
              "args GiB/dev", "outputs GiB/dev", "temps GiB/dev", "total GiB/dev", "compiled GFLOP/dev",
              "analytic GFLOP total", "analytic / dev"]
    batch = FLAGS.global_batch if FLAGS.what == "train_step" else 1
    row = [FLAGS.what, FLAGS.model, FLAGS.latent, cfg.attention_impl or "xla",
           "on" if FLAGS.loop_invariant_motion else "off", dict(mesh.shape), mesh.size, batch,
           round(lower_s + report.seconds, 1), gib(report.argument_bytes), gib(report.output_bytes),
           gib(report.temp_bytes), gib(report.total_bytes), report.flops / 1e9, analytic / 1e9,
           analytic / mesh.size / 1e9]
    table = benchmarking.markdown_table(header, [row])
    print(table)
    if FLAGS.output:
        benchmarking.append_benchmark(
            FLAGS.output, f"AOT compile: {FLAGS.model} {FLAGS.what} (aot_compile)", table,
            "Compiled on fake CPU devices (no allocation). Memory from compiled.memory_analysis() per device "
            "(arguments + outputs + temporaries - aliased/donated); FLOPs from compiled.cost_analysis() (XLA:CPU's "
            "count; a while loop's body may be counted once) beside the analytic count (matmuls + attention; train = "
            "3 x forward). 'chunked' attention: XLA attention over query blocks (one block's scores alive at a time),"
            " the CPU stand-in for the GPU's cuDNN flash attention.")


if __name__ == "__main__":
    app.run(main)
