"""Shared pieces of the benchmark scripts: machine description, matmul peak, timing, BENCHMARKS.md rows."""
from __future__ import annotations

import datetime
import os
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax import reporting

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# shared with an export's TRAINING.md; the benchmark scripts call them by these names
git_revision, machine = reporting.git_revision, reporting.machine
markdown_table, loss_quarters = reporting.markdown_table, reporting.loss_quarters
# latent [H, W] per model config at a 16-frame buffer (channels come from the model config)
DEFAULT_LATENT = {"tiny": (8, 8), "small": (16, 16), "streamdit_4b": (64, 64)}


def model_overrides(dtype=None, param_dtype=None, attention_impl=None) -> dict:
    """ModelConfig overrides from benchmark flags, skipping the unset ones."""
    return {k: v for k, v in (("dtype", dtype), ("param_dtype", param_dtype), ("attention_impl", attention_impl)) if v}


def block(x):
    return jax.tree.map(lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, x)


def time_calls(fn: Callable[[], object], iters: int, warmup: int = 2) -> np.ndarray:
    """Seconds per call of ``fn`` (each call waited for), after ``warmup`` untimed calls (compilation)."""
    for _ in range(warmup):
        block(fn())
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        block(fn())
        out.append(time.perf_counter() - t)
    return np.asarray(out)


def matmul_peak(n: int | None = None, dtype=None, iters: int = 5) -> tuple[float, str]:
    """Achieved FLOP/s of a square jitted matmul on the default device: the practical ceiling we compare against."""
    gpu = jax.devices()[0].platform != "cpu"
    n = n or (8192 if gpu else 4096)
    dtype = dtype or (jnp.bfloat16 if gpu else jnp.float32)
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    f = jax.jit(lambda a, b: a @ b)
    t = np.median(time_calls(lambda: f(a, b), iters))
    return 2.0 * n ** 3 / t, f"{n}x{n} {jnp.dtype(dtype).name} matmul"


def latency_jitter_floor(target_s: float, peak: float, iters: int = 3000) -> tuple[float, float]:
    """(p99/p50, p50 seconds) of one plain jitted float32 matmul sized to take about ``target_s`` per call.

    The latency tail of the machine itself (VM scheduling, XLA's CPU thread pool), with no Python work, no buffer
    state and no model: the floor under a streamed chunk's p99/p50 measured in the same run.
    """
    n = max(32, round((target_s * peak / 2) ** (1 / 3)))
    f = jax.jit(lambda a: a @ a)
    for _ in range(2):  # a small matmul runs below the peak: rescale n once or twice towards target_s
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        took = float(np.median(time_calls(lambda: f(a), 20)))
        n = max(32, round(n * (target_s / took) ** (1 / 3)))
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    t = time_calls(lambda: f(a), iters)
    return float(np.percentile(t, 99) / np.percentile(t, 50)), float(np.median(t))


def append_benchmark(path: str, title: str, table: str, notes: str = "") -> None:
    """Appends a dated section with command, machine and git revision to BENCHMARKS.md."""
    command = "python -m " + " ".join([sys.argv[0].replace(REPO + "/", "").replace("/", ".").removesuffix(".py")]
                                      + sys.argv[1:])
    text = (f"\n## {title}\n\n- command: `{command}`\n- machine: {machine()}\n"
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
            f"- git revision: {git_revision()}\n\n{table}\n")
    if notes:
        text += f"\n{notes}\n"
    with open(path, "a") as f:
        f.write(text)
