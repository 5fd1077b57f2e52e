r"""Training throughput and learning over a wall-clock budget, against the matmul peak measured in the same run.

  python -m experiments.benchmark_train --config=experiments/configs/shapes_small.py --workdir=/tmp/bench_small \
      --minutes=32

Runs the real training loop (dataset, grain, checkpoints, metrics) for --minutes, then summarises metrics.jsonl:
the loss curve (first / at quarters / last window), steps/s and examples/s after the first (compiling) step, and
achieved FLOP/s from the analytic count (3 x forward FLOPs per example: forward + backward).
Appends a section to BENCHMARKS.md unless --output=''.
"""
from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from experiments import benchmarking
from streamdit_jax.models import forward_flops
from streamdit_jax.configs import TrainConfig
from streamdit_jax.training.input import train_data_iterator
from streamdit_jax.training.loop import train

config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (resumes if it holds a checkpoint).")
flags.DEFINE_float("minutes", 30.0, "Wall-clock training budget.")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to append to ('' = print only).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.WARNING)
    cfg = TrainConfig.from_dict(FLAGS.config.to_dict())
    peak, peak_desc = benchmarking.matmul_peak()
    print(f"{benchmarking.machine()}\nmatmul peak: {peak / 1e9:.1f} GFLOP/s ({peak_desc})")
    t0 = time.time()
    train(cfg, FLAGS.workdir, train_data_iterator, time_limit_s=60 * FLAGS.minutes)
    wall = time.time() - t0
    rows = [json.loads(l) for l in open(os.path.join(FLAGS.workdir, "metrics.jsonl"))]
    timed = [r for r in rows[1:] if "steps_per_sec" in r]  # the first window holds the compilation
    steps_per_sec = float(np.median([r["steps_per_sec"] for r in timed])) if timed else float("nan")
    latent = cfg.make_autoencoder().latent_shape(
        (cfg.buffer_len, *cfg.data.frame_hw, 3))
    flops_per_step = 3 * forward_flops(cfg.model, latent, batch=cfg.batch_size)  # forward + backward
    achieved = flops_per_step * steps_per_sec
    quarter = benchmarking.loss_quarters(rows)
    curve = " -> ".join(f"{r['loss']:.4f} (step {r['step']})" for r in quarter)
    tokens_per_example = int(np.prod(cfg.model.token_grid(latent)))
    header = ["config", "params", "batch", "steps", "wall min", "steps/s", "examples/s", "tokens/s", "GFLOP/step",
              "GFLOP/s", "of peak", "loss: first -> quarters -> last window"]
    from streamdit_jax import parallel
    from streamdit_jax.models.factory import abstract_model
    n_params = parallel.num_params(abstract_model(cfg.model)[1])
    table = benchmarking.markdown_table(header, [[
        os.path.basename(FLAGS["config"].config_filename) if hasattr(FLAGS["config"], "config_filename") else "",
        f"{n_params / 1e6:.1f}M", cfg.batch_size, rows[-1]["step"], round(wall / 60, 1), steps_per_sec,
        steps_per_sec * cfg.batch_size, round(steps_per_sec * cfg.batch_size * tokens_per_example),
        flops_per_step / 1e9, achieved / 1e9, f"{100 * achieved / peak:.1f}%", curve]])
    print(table)
    if FLAGS.output:
        per_c = {k: round(v, 4) for k, v in rows[-1].items() if k.startswith("loss_c")}
        benchmarking.append_benchmark(
            FLAGS.output, "Training (benchmark_train)", table,
            f"Matmul peak measured in the same run: {peak / 1e9:.1f} GFLOP/s ({peak_desc}). FLOPs analytic: "
            f"3 x forward per example (text encoder excluded). Last window's loss per chunk size: {per_c}.")


if __name__ == "__main__":
    app.run(main)
