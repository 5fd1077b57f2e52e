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

import os
import shutil

from absl import app, flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import fail
from streamdit_jax.training import export
from streamdit_jax.restore import CheckpointError

flags.DEFINE_string("workdir", None, "Training workdir to export (latest checkpoint unless --step).")
flags.DEFINE_string("output", None, "Output directory (replaced once the export is complete).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
flags.DEFINE_enum("dtype", None, ["float16", "bfloat16", "float32"],
                  "Storage dtype of the parameters (default: float16 for orbax, float32 for safetensors).")
flags.DEFINE_enum("format", "orbax", list(export.FORMATS),
                  "orbax: checkpoints/<step> read like a training run; safetensors: model.safetensors + config.json.")
flags.DEFINE_string("notes", "", "Free text added to TRAINING.md (e.g. the exact training command).")
flags.mark_flags_as_required(["workdir", "output"])
FLAGS = flags.FLAGS


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
        info = export.write_export(FLAGS.workdir, staging, FLAGS.format, FLAGS.dtype, FLAGS.step, FLAGS.notes,
                                   name=os.path.basename(os.path.normpath(FLAGS.output)))
        export.publish(staging, FLAGS.output)
    except CheckpointError as e:
        fail(str(e))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(FLAGS.output) for n in ns)
    print(f"exported step {info['step']} of {FLAGS.workdir} to {FLAGS.output}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
