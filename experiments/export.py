r"""Export a training run for inference: EMA parameters only, config, training-log summary.

  python -m experiments.export --workdir=/tmp/small --output=experiments/checkpoints/shapes_small
  python -m experiments.export --workdir=/tmp/small --output=/tmp/small_st --format=safetensors

--format=orbax (default; float16) writes checkpoints/<step> like a training run; --format=safetensors (float32)
writes model.safetensors (dotted tensor names) + config.json. Both carry the run's autoencoder/ and integrity.json,
and every loader (stream, evaluate, distill --teacher, --init_from) reads either.

The output is a workdir that experiments.stream / evaluate / distill (--teacher) read like a training run. It also
gets TRAINING.md (config, wall time, loss curve, steps/s, from WORKDIR/metrics.jsonl) and a copy of metrics.jsonl.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
from absl import app, flags

from experiments.flag_parsing import parse_flags
from experiments import benchmarking
from experiments.streaming import fail
from streamdit_jax.training import export
from streamdit_jax.restore import CheckpointError

flags.DEFINE_string("workdir", None, "Training workdir to export (latest checkpoint unless --step).")
flags.DEFINE_string("output", None, "Output directory (replaced once the export is complete).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
flags.DEFINE_enum("dtype", None, ["float16", "bfloat16", "float32"],
                  "Storage dtype of the parameters (default: float16 for orbax, float32 for safetensors).")
flags.DEFINE_enum("format", "orbax", ["orbax", "safetensors"],
                  "orbax: checkpoints/<step> read like a training run; safetensors: model.safetensors + config.json.")
flags.DEFINE_string("notes", "", "Free text added to TRAINING.md (e.g. the exact training command).")
flags.mark_flags_as_required(["workdir", "output"])
FLAGS = flags.FLAGS


def training_summary(workdir: str) -> str:
    """Markdown summary of WORKDIR/metrics.jsonl: steps, loss at quarters, steps/s, per-chunk-size losses."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return "(no metrics.jsonl in the workdir)\n"
    rows = [json.loads(l) for l in open(path)]
    quarters = benchmarking.loss_quarters(rows)
    speeds = [r["steps_per_sec"] for r in rows[1:] if "steps_per_sec" in r]
    table = benchmarking.markdown_table(
        ["step", "loss", "grad norm", "learning rate"],
        [[r["step"], round(r["loss"], 4), round(r.get("grad_norm", float("nan")), 3),
          f"{r.get('learning_rate', float('nan')):.2e}"] for r in quarters])
    per_c = {k: round(v, 4) for k, v in rows[-1].items() if k.startswith("loss_c")}
    chunks = f"; last window's loss per chunk size: {per_c}" if per_c else ""  # distillation logs none
    return f"{table}\n\nmedian steps/s {np.median(speeds):.3f} over {len(speeds)} log windows{chunks}\n"


def overlaps(a: str, b: str) -> bool:
    """Whether one path is the other or lies inside it."""
    a, b = os.path.realpath(a), os.path.realpath(b)
    return a == b or a.startswith(b + os.sep) or b.startswith(a + os.sep)


def main(argv):
    del argv
    if overlaps(FLAGS.output, FLAGS.workdir):
        fail(f"--output={FLAGS.output!r} overlaps --workdir={FLAGS.workdir!r}: the output directory is replaced "
             f"by the export, so it must lie outside the training run (and not contain it)")
    # Built beside the output and published only when complete: a failed or killed export leaves the previous one
    # untouched (a killed one's staging directory is removed by the next export to the same output).
    staging = export.staging_directory(FLAGS.output)
    try:
        info = write_export(staging)
        export.publish(staging, FLAGS.output)
    except CheckpointError as e:
        fail(str(e))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(FLAGS.output) for n in ns)
    print(f"exported step {info['step']} of {FLAGS.workdir} to {FLAGS.output}: {size / 2**20:.1f} MiB")


def write_export(output: str) -> dict:
    """The export (checkpoint, autoencoder copy, metrics.jsonl, TRAINING.md) into the empty directory ``output``."""
    if FLAGS.format == "safetensors":
        info = export.export_safetensors(FLAGS.workdir, output, FLAGS.dtype or "float32", FLAGS.step)
        config = json.load(open(os.path.join(output, "config.json")))
    else:
        info = export.export_for_inference(FLAGS.workdir, output, FLAGS.dtype or "float16", FLAGS.step)
        config = json.load(open(os.path.join(output, "checkpoints", str(info["step"]), "config", "metadata")))
    if os.path.exists(os.path.join(FLAGS.workdir, "metrics.jsonl")):
        shutil.copy(os.path.join(FLAGS.workdir, "metrics.jsonl"), os.path.join(output, "metrics.jsonl"))
    with open(os.path.join(output, "TRAINING.md"), "w") as f:
        f.write(f"# {os.path.basename(os.path.normpath(FLAGS.output))}\n\n"
                f"Exported by `python -m experiments.export` from the training run `{info['source']}/` at step {info['step']}: EMA "
                f"parameters only, {info['params']:,} parameters stored as {info['dtype']} (loaded as float32).\n"
                f"Machine: {benchmarking.machine()}; git revision {benchmarking.git_revision()}.\n\n"
                f"{FLAGS.notes}\n\n## Training log (metrics.jsonl)\n\n{training_summary(FLAGS.workdir)}\n"
                f"## Config\n\n```json\n{json.dumps(config, indent=1)}\n```\n")
    return info


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
