"""Small pieces of the reports a run leaves behind (an export's TRAINING.md, BENCHMARKS.md rows): the machine, the
code revision, loss-curve points and markdown tables."""
from __future__ import annotations

import os
import platform
import subprocess
from typing import Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_revision() -> str:
    """Short HEAD revision (+ -dirty); STREAMDIT_GIT_REVISION overrides it where no .git travels (device runs)."""
    if os.environ.get("STREAMDIT_GIT_REVISION"):
        return os.environ["STREAMDIT_GIT_REVISION"]
    try:
        rev = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True).strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "streamdit_jax", "experiments"],
                               cwd=REPO).returncode != 0
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    """The default JAX backend in words: CPU model and cores, or the accelerators; with the jax version."""
    import jax  # here, not at import: the other helpers are plain text and need no backend

    dev = jax.devices()[0]
    if dev.platform == "cpu":
        model = platform.processor() or "cpu"
        try:
            with open("/proc/cpuinfo") as f:
                model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        return f"CPU {model}, {os.cpu_count()} cores, jax {jax.__version__}"
    return f"{jax.device_count()}x {dev.device_kind}, jax {jax.__version__}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def loss_quarters(rows: list[dict]) -> list[dict]:
    """The metrics.jsonl rows at the first log point, the quarters and the last one (a loss curve in 5 points)."""
    return [rows[min(len(rows) - 1, int(q * (len(rows) - 1)))] for q in (0, 0.25, 0.5, 0.75, 1.0)]


def rss_bytes() -> int:
    """This process's resident memory in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
