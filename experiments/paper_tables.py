r"""The paper's tables on the shapes world, every number from experiments/evaluate.py (RESULTS.md).

  python -m experiments.paper_tables --table=2 --teacher=experiments/checkpoints/shapes_small \
      --student=experiments/checkpoints/shapes_small_distilled [--num_schedules=5] [--output=RESULTS.md]
  python -m experiments.paper_tables --table=3 --checkpoints=c1=DIR1,c1-16=DIR2 [...]

Writes a held-out schedule file (seeds 1000 + i: not the evaluator's default 20), evaluates each row on it in this
process with the library's evaluation driver (streamdit_jax.evaluation.driver: what `python -m experiments.evaluate`
runs; the equivalent command is printed in the table's notes), and appends the table to OUTPUT with the machine,
date and revision. Columns: present / colour / shape / direction accuracy, mean switch lag, worst drift over the
four metrics (last window minus first, points), model evaluations per emitted frame, and CPU frames/s.
"""
from __future__ import annotations

import os
import sys
import tempfile

from absl import app, flags

from experiments import benchmarking
from experiments.streaming import PATCH_TEACHER, quiet_library_logs
from streamdit_jax.evaluation.driver import evaluate_checkpoint
from streamdit_jax.evaluation.schedule import random_schedule
from streamdit_jax.sampling.schedule_io import read_schedules, write_schedules

flags.DEFINE_enum("table", "2", ["2", "3"], "Paper Table 2 (streaming schemes) or Table 3 (chunk-size sets at c=1).")
flags.DEFINE_string("teacher", PATCH_TEACHER, "Table 2: the teacher's workdir (default: the patch-autoencoder "
                    "model RESULTS.md was measured on).")
flags.DEFINE_string("student", "", "Table 2: the distilled student's workdir ('' = leave its row out).")
flags.DEFINE_float("guidance", 3.0, "The guidance scale of every non-distilled row (Table 2: as distilled).")
flags.DEFINE_string("checkpoints", "", "Table 3: name=workdir pairs, comma-separated, all evaluated at c=1.")
flags.DEFINE_integer("num_schedules", 5, "Held-out schedules of --num_frames frames (a switch every 64 frames).")
flags.DEFINE_integer("num_frames", 256, "Frames per schedule.")
flags.DEFINE_string("output", "RESULTS.md", "Markdown file to append to ('' = print only).")
FLAGS = flags.FLAGS

METRICS = ("present", "colour", "shape", "direction")


def calls_per_step(w: float) -> int:
    """Model evaluations per micro step: CFG (w > 1) batches a conditional and an unconditional branch."""
    return 2 if w > 1 else 1


def shown(path: str) -> str:
    """A path as a reader should type it: relative to the repository when inside it (the bundled checkpoints)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full = os.path.abspath(path)
    return os.path.relpath(full, repo) if full.startswith(repo + os.sep) else path


def table2_rows(teacher: str, student: str, w: float) -> list[tuple[str, str, dict, float]]:
    """(name, checkpoint, sampling settings (evaluate's flags), model evaluations per emitted frame)."""
    g = calls_per_step(w)
    rows = [("teacher: K=0 c=2 N=8 s=16 + CFG", teacher, dict(chunk=2, steps_per_chunk=16, guidance=w), 16 * g / 2)]
    if student:
        rows.append(("distilled student: K=0 c=2 N=8 s=1", student, dict(chunk=2, steps_per_chunk=1), 1 / 2))
    rows += [("FIFO-style diagonal (teacher): c=1 N=16 s=1 + CFG", teacher,
              dict(chunk=1, steps_per_chunk=1, guidance=w), 1 * g),
             ("chunk extension (teacher): K=8 c=8 N=1 s=16 + CFG", teacher,
              dict(chunk=8, steps_per_chunk=16, reference_frames=8, guidance=w), 16 * g / 8)]
    return rows


def table3_rows(pairs: str, w: float) -> list[tuple[str, str, dict, float]]:
    g = calls_per_step(w)
    out = []
    for item in filter(None, pairs.split(",")):
        name, sep, path = item.partition("=")
        if not sep:
            raise app.UsageError(f"--checkpoints entry {item!r}: expected name=workdir")
        out.append((f"trained on {name}, run at c=1 s=1 + CFG", path,
                    dict(chunk=1, steps_per_chunk=1, guidance=w), 1.0 * g))
    return out


def main(argv):
    del argv
    quiet_library_logs()
    rows = table2_rows(FLAGS.teacher, FLAGS.student, FLAGS.guidance) if FLAGS.table == "2" else \
        table3_rows(FLAGS.checkpoints, FLAGS.guidance)
    if not rows:
        raise app.UsageError("no rows: give --checkpoints for table 3")
    tmp = tempfile.mkdtemp(prefix="paper_tables_")
    schedules = os.path.join(tmp, "heldout.jsonl")
    write_schedules(schedules, [{"seed": 1000 + i, "num_frames": FLAGS.num_frames,
                                 "prompts": random_schedule(1000 + i, FLAGS.num_frames)}
                                for i in range(FLAGS.num_schedules)])
    heldout = read_schedules(schedules)  # what the file holds: the commands in the notes replay exactly this
    table, commands = [], []
    for i, (name, ckpt, settings, evals) in enumerate(rows):
        # the paper's start (emit from the T2V cache), as RESULTS.md was run
        settings = dict(warmup_frames=0, **settings)
        print(f"[{i + 1}/{len(rows)}] {name}", flush=True)
        # every row in this process: the shapes-world models are small, and a row's Streamer is dropped before the
        # next is loaded; pause_gc as experiments.evaluate streams, so frames/s is measured alike
        try:
            res = evaluate_checkpoint(ckpt, heldout, pause_gc=True, **settings)
        except ValueError as e:  # a checkpoint that cannot be read, a scheme it cannot run
            print(f"error: {name}: {e}", file=sys.stderr)
            sys.exit(2)
        drift = max((res["drift_points"][m] for m in METRICS), key=abs)
        lag = res["switch_lag_frames"]
        table.append([name] + [f"{100 * res[m]:.1f}" for m in METRICS] +
                     ["n/a" if lag is None else f"{lag:.1f}", f"{drift:+.1f}", f"{evals:g}",
                      f"{res['frames_per_second']:.1f}"])
        flags_text = " ".join(f"--{k}={v}" for k, v in settings.items())
        commands.append(f"- {name}: `python -m experiments.evaluate --checkpoint={shown(ckpt)} "
                        f"--schedules=heldout.jsonl {flags_text}`")
    header = ["scheme", "present %", "colour %", "shape %", "direction %", "switch lag (frames)",
              "worst drift (pp)", "model evals / frame", "CPU frames/s"]
    md = benchmarking.markdown_table(header, table)
    print(md)
    notes = (f"Held-out schedules: {FLAGS.num_schedules} x {FLAGS.num_frames} frames, seeds 1000.."
             f"{999 + FLAGS.num_schedules}, a one-attribute switch every 64 frames (written by this script). "
             "Commands:\n" + "\n".join(commands))
    if FLAGS.output:
        title = "Paper Table 2 analogue: streaming schemes" if FLAGS.table == "2" else \
            "Paper Table 3 analogue: chunk-size sets, all run at c=1"
        benchmarking.append_benchmark(FLAGS.output, title, md, notes)


if __name__ == "__main__":
    app.run(main)
