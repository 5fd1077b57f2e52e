"""Inference exports: the EMA parameters of a training run in a self-contained directory that is published
atomically.

An export is what gets bundled, copied and shipped, so it holds no path of the machine that made it: its config names
its own ``autoencoder/`` copy relatively and drops the paths that only meant something to the training run
(``init_from``, the distillation teacher, the data folders); orbax's commit markers lose their absolute paths; an
integrity record (sha256 of every file the loader reads) lets ``restore.load_for_inference`` refuse a damaged copy.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import json
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax.checkpoint import Checkpointer
from streamdit_jax.fileio import write_text_atomic
from streamdit_jax.configs import TrainConfig
from streamdit_jax import reporting, weights
from streamdit_jax.restore import (AUTOENCODER_DIR, CONFIG_JSON, INFERENCE_EXPORT, INTEGRITY_FILE, TEXT_ENCODER_RECORD,
                                   copy_autoencoder, file_digests, load_for_inference, read_encoder_architecture,
                                   read_text_encoder_record, resolve_saved_config)
from streamdit_jax.weights import SAFETENSORS_FILE

COMMIT_MARKER = "commit_success.txt"  # orbax writes the absolute path it committed to into these


def export_config(cfg: TrainConfig) -> dict:
    """The config an export saves: the learned autoencoder as its own ``autoencoder/`` copy (relative), and no path
    that pointed outside the run (fine-tuning source, teacher, data folders: provenance, not needed to sample; the
    frozen text encoder's directory: recorded by what it is instead, ``write_text_encoder_record``, and given back
    at load time)."""
    if cfg.distill is not None:
        cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, teacher=""))
    text = dataclasses.replace(cfg.model.text, path="")
    cfg = dataclasses.replace(cfg, init_from="", data=dataclasses.replace(cfg.data, data_dir="", video_dir=""),
                              model=dataclasses.replace(cfg.model, text=text))
    d = cfg.to_dict()
    if cfg.autoencoder:
        d["autoencoder"] = AUTOENCODER_DIR
    return d


def export_for_inference(workdir: str, output: str, dtype: str = "float16", step: int | None = None) -> dict:
    """Writes the EMA parameters of WORKDIR's checkpoint (cast to ``dtype``), its portable config and a description
    into OUTPUT/checkpoints/<step>, its autoencoder into OUTPUT/autoencoder and the integrity record: what a bundled
    checkpoint needs (no optimizer state, no raw parameters), and what ``load_for_inference`` reads back (cast to the
    model's param dtype). Returns the description."""
    cfg, small, info = _exported_params(workdir, dtype, step)
    out = Checkpointer(output, async_save=False, max_to_keep=1)
    try:
        out.save(info["step"], {"ema_params": small}, export_config(cfg), {INFERENCE_EXPORT: info}, force=True)
    finally:
        out.close()
    _finish_export(cfg, output, workdir)
    return info


def export_safetensors(workdir: str, output: str, dtype: str = "float32", step: int | None = None) -> dict:
    """Writes the EMA parameters of WORKDIR's checkpoint (cast to ``dtype``) as OUTPUT/model.safetensors (dotted
    names: ``weights.tensor_name``), the portable config as OUTPUT/config.json, its autoencoder into
    OUTPUT/autoencoder and the integrity record; ``load_for_inference`` reads the directory back (cast to the
    model's param dtype). Returns the description (also stored as the safetensors metadata, as strings)."""
    cfg, small, info = _exported_params(workdir, dtype, step)
    os.makedirs(output, exist_ok=True)
    weights.save(os.path.join(output, SAFETENSORS_FILE), small,
                 {"format": "streamdit_jax", **{k: str(v) for k, v in info.items()}})
    write_text_atomic(os.path.join(output, CONFIG_JSON), json.dumps(export_config(cfg), indent=1) + "\n")
    _finish_export(cfg, output, workdir)
    return info


def _exported_params(workdir: str, dtype: str, step: int | None):
    """(config, EMA parameters cast to ``dtype``, the export's description) of WORKDIR's checkpoint (its latest
    step unless ``step``; a safetensors export has no steps: 0)."""
    cfg, _, params = load_for_inference(workdir, step)
    if step is None and not os.path.isfile(os.path.join(workdir, SAFETENSORS_FILE)):
        src = Checkpointer(workdir, async_save=False, create=False)
        step = src.latest_step()
        src.close()
    small = jax.tree.map(lambda x: x.astype(jnp.dtype(dtype)), params)
    info = {"source": os.path.basename(os.path.normpath(os.path.abspath(workdir))), "step": int(step or 0),
            "dtype": str(jnp.dtype(dtype)), "params": int(sum(x.size for x in jax.tree.leaves(small)))}
    return cfg, small, info


def _finish_export(cfg, output: str, source: str) -> None:
    """The export's own copy of its learned autoencoder, its text encoder's record, then its integrity record."""
    if cfg.autoencoder:
        copy_autoencoder(cfg.autoencoder, output, replace=True)
    write_text_encoder_record(cfg, output, source)
    seal_export(output)


def write_text_encoder_record(cfg: TrainConfig, root: str, source: str | None = None) -> None:
    """ROOT/text_encoder.json (restore.TEXT_ENCODER_RECORD) when the model reads a frozen text encoder from a
    directory, which the export's config does not name: its kind and architecture config (config.json without its
    metadata, ``restore.read_encoder_architecture``; None when unreadable), so that a local copy given at load time is checked
    to be the same architecture. A ``source`` that is itself an export passes its record on; otherwise a stale record
    in ROOT is removed."""
    path = os.path.join(root, TEXT_ENCODER_RECORD)
    text = cfg.model.text
    record = None
    if text.kind != "byte" and text.path:
        record = {"kind": text.kind, "config": read_encoder_architecture(text.path)}
    elif text.kind != "byte" and source:
        record = read_text_encoder_record(source)
    if record is None:
        if os.path.isfile(path):
            os.remove(path)
        return
    write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def seal_export(root: str) -> None:
    """Strips machine paths from orbax's commit markers and (re)writes the integrity record of ``root``."""
    for dirpath, _, filenames in os.walk(os.path.join(root, "checkpoints")):
        if COMMIT_MARKER in filenames:
            write_text_atomic(os.path.join(dirpath, COMMIT_MARKER), "Checkpoint commit was successful.\n")
    record = {"algorithm": "sha256", "sha256": file_digests(root)}
    write_text_atomic(os.path.join(root, INTEGRITY_FILE), json.dumps(record, indent=1, sort_keys=True) + "\n")


def make_portable(root: str) -> None:
    """Rewrites an existing export in place to the self-contained form ``export_for_inference`` writes today:
    portable config and description in every saved step, commit markers without paths, a fresh integrity record.
    The arrays are not touched."""
    ckpt = Checkpointer(root, async_save=False, create=False)
    try:
        saved_steps = ckpt.all_steps()
        for step in saved_steps:
            cfg = resolve_saved_config(ckpt.read_config(step), root)
            data = ckpt.read_data(step)
            step_dir = os.path.join(ckpt.directory, str(step))
            if INFERENCE_EXPORT not in data:
                raise ValueError(f"{step_dir!r} is a training checkpoint, not an export (no {INFERENCE_EXPORT!r} item)")
            info = dict(data[INFERENCE_EXPORT])
            info["source"] = os.path.basename(os.path.normpath(info.get("source", "")))
            write_text_atomic(os.path.join(step_dir, "config", "metadata"), json.dumps(export_config(cfg)))
            write_text_encoder_record(cfg, root, root)
            write_text_atomic(os.path.join(step_dir, "data", "metadata"), json.dumps({**data, INFERENCE_EXPORT: info}))
    finally:
        ckpt.close()
    seal_export(root)


# --- the whole export of a run, with its card ---------------------------------------------------------------------

FORMATS = ("orbax", "safetensors")
DEFAULT_DTYPE = {"orbax": "float16", "safetensors": "float32"}
METRICS_FILE = "metrics.jsonl"
CARD_FILE = "TRAINING.md"


def write_export(workdir: str, output: str, format: str = "orbax", dtype: str | None = None, step: int | None = None,
                 notes: str = "", name: str | None = None) -> dict:
    """The export of WORKDIR into the empty directory ``output``: the checkpoint in ``format`` (one of FORMATS;
    ``dtype`` default DEFAULT_DTYPE[format]), a copy of WORKDIR/metrics.jsonl and the card (``write_training_card``,
    headed ``name``). Returns the checkpoint's description."""
    if format == "safetensors":
        info = export_safetensors(workdir, output, dtype or DEFAULT_DTYPE[format], step)
        config = json.load(open(os.path.join(output, CONFIG_JSON)))
    elif format == "orbax":
        info = export_for_inference(workdir, output, dtype or DEFAULT_DTYPE[format], step)
        config = json.load(open(os.path.join(output, "checkpoints", str(info["step"]), "config", "metadata")))
    else:
        raise ValueError(f"export format {format!r} is not one of {FORMATS}")
    if os.path.exists(os.path.join(workdir, METRICS_FILE)):
        shutil.copy(os.path.join(workdir, METRICS_FILE), os.path.join(output, METRICS_FILE))
    write_training_card(workdir, output, info, config, notes, name)
    return info


def training_summary(workdir: str) -> str:
    """Markdown summary of WORKDIR/metrics.jsonl: steps, loss at quarters, steps/s, per-chunk-size losses."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return "(no metrics.jsonl in the workdir)\n"
    rows = [json.loads(l) for l in open(path)]
    quarters = reporting.loss_quarters(rows)
    speeds = [r["steps_per_sec"] for r in rows[1:] if "steps_per_sec" in r]
    table = reporting.markdown_table(
        ["step", "loss", "grad norm", "learning rate"],
        [[r["step"], round(r["loss"], 4), round(r.get("grad_norm", float("nan")), 3),
          f"{r.get('learning_rate', float('nan')):.2e}"] for r in quarters])
    per_c = {k: round(v, 4) for k, v in rows[-1].items() if k.startswith("loss_c")}
    chunks = f"; last window's loss per chunk size: {per_c}" if per_c else ""  # distillation logs none
    return f"{table}\n\nmedian steps/s {np.median(speeds):.3f} over {len(speeds)} log windows{chunks}\n"


def write_training_card(workdir: str, output: str, info: dict, config: dict, notes: str = "",
                        name: str | None = None) -> None:
    """Writes OUTPUT/TRAINING.md: where the export came from (``info`` of ``export_for_inference`` /
    ``export_safetensors``), machine and code revision, ``notes``, WORKDIR's training log (``training_summary``)
    and the saved ``config``. ``name`` heads it (default: OUTPUT's own name; an export built in a staging directory
    passes the name it is published under)."""
    name = os.path.basename(os.path.normpath(output)) if name is None else name
    with open(os.path.join(output, CARD_FILE), "w") as f:
        f.write(f"# {name}\n\n"
                f"Exported by `python -m experiments.export` from the training run `{info['source']}/` at step "
                f"{info['step']}: EMA parameters only, {info['params']:,} parameters stored as {info['dtype']} "
                f"(loaded as float32).\n"
                f"Machine: {reporting.machine()}; git revision {reporting.git_revision()}.\n\n"
                f"{notes}\n\n## Training log (metrics.jsonl)\n\n{training_summary(workdir)}\n"
                f"## Config\n\n```json\n{json.dumps(config, indent=1)}\n```\n")


# --- publishing a finished export --------------------------------------------------------------------------------

STAGING_PREFIX = ".export-"


def staging_directory(output: str) -> str:
    """A new empty directory beside ``output`` to build the export in, named after ``output`` and this process (so
    ``clean_stale_staging`` can tell a killed export's leftovers from a running one's), with the permissions of a
    normal directory (mkdtemp's are 0700)."""
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    clean_stale_staging(output)
    name = os.path.basename(os.path.normpath(output))
    path = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{name}-{os.getpid()}-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)
    return path


def clean_stale_staging(output: str) -> list[str]:
    """Removes the staging directories of exports to ``output`` whose process is gone (a killed export); returns
    them. Directories of live processes on this machine are left alone."""
    parent = os.path.dirname(os.path.abspath(output))
    prefix = f"{STAGING_PREFIX}{os.path.basename(os.path.normpath(output))}-"
    removed = []
    for entry in os.listdir(parent) if os.path.isdir(parent) else []:
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
            removed.append(os.path.join(parent, entry))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: str, b: str) -> bool:
    """Swaps two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where that is unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD = -100
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def publish(staging: str, output: str) -> None:
    """Puts the finished directory ``staging`` at ``output``. An existing ``output`` is exchanged with it in one
    atomic step where the OS can (Linux), so a reader or a kill at any moment finds either the old export or the
    new one there, never neither; the old one is then removed. Elsewhere: two renames (a window of microseconds)."""
    if os.path.exists(output):
        if _exchange(staging, output):
            shutil.rmtree(staging, ignore_errors=True)  # now holds the previous export
            return
        old = staging + "-old"
        os.replace(output, old)
        os.replace(staging, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, output)
