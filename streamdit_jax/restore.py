"""Loading a trained checkpoint for inference (streaming, evaluation, distillation teachers).

A checkpoint directory is self-contained: its learned autoencoder lives in ``autoencoder/`` inside it, and its saved
config names that copy by a path RELATIVE to the checkpoint (``portable_config``), so the directory can be moved,
cloned or shipped. Every way a checkpoint can be unreadable (missing or damaged files, arrays that do not match the
config, non-finite parameters, a file whose digest differs from the export's integrity record) is a
``CheckpointError`` naming the file or parameter at fault.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from streamdit_jax import parallel, weights
from streamdit_jax.checkpoint import SIZES_FILE, STATE, Checkpointer, file_sizes
from streamdit_jax.configs import TrainConfig
from streamdit_jax.models.factory import abstract_model
from streamdit_jax.models.autoencoder_dirs import is_autoencoder_dir
from streamdit_jax.weights import SAFETENSORS_FILE, WeightsMismatch


INFERENCE_EXPORT = "inference_export"  # key of the data item that marks an EMA-only export
AUTOENCODER_DIR = "autoencoder"  # a workdir's / export's own copy of its learned autoencoder
INTEGRITY_FILE = "integrity.json"  # an export's {relative path: sha256} of every file the loader reads
CONFIG_JSON = "config.json"  # a safetensors export's config (beside weights.SAFETENSORS_FILE)
# An export's record of the frozen text encoder its config no longer names by path: {"kind", "config": the encoder's
# config.json}, what a local copy given at load time must match.
TEXT_ENCODER_RECORD = "text_encoder.json"
TEXT_ENCODER_FLAG = "text_encoder=DIR (--text_encoder on the command lines)"


class CheckpointError(ValueError):
    """A checkpoint path that is missing, empty, damaged, or does not match this code's configs."""


def copy_autoencoder(source: str, workdir: str, replace: bool = False) -> str:
    """Copies the learned autoencoder directory ``source`` to WORKDIR/autoencoder (atomically). A copy already there
    is kept (a resumed run keeps the one it trained with) unless ``replace`` (an export over an older export)."""
    target = os.path.join(workdir, AUTOENCODER_DIR)
    if replace or not is_autoencoder_dir(target):
        os.makedirs(workdir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-autoencoder", dir=workdir)
        shutil.copytree(source, os.path.join(tmp, "ae"))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(os.path.join(tmp, "ae"), target)
        shutil.rmtree(tmp, ignore_errors=True)
    return os.path.abspath(target)


def _inside(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root + os.sep)


def portable_config(cfg: TrainConfig, workdir: str) -> dict:
    """``cfg.to_dict()`` as saved beside a checkpoint in WORKDIR: a learned autoencoder inside WORKDIR (its own copy,
    which training always makes) is named relative to WORKDIR, so the saved config stays true when the directory
    moves. ``resolve_saved_config`` reads it back."""
    d = cfg.to_dict()
    if d.get("autoencoder") and os.path.isabs(d["autoencoder"]) and _inside(d["autoencoder"], workdir):
        d["autoencoder"] = os.path.relpath(os.path.realpath(d["autoencoder"]), os.path.realpath(workdir))
    return d


def resolve_saved_config(saved: Mapping[str, Any], root: str) -> TrainConfig:
    """The TrainConfig of a config saved in the checkpoint directory ``root`` (relative paths are relative to it;
    older checkpoints saved absolute ones), its learned autoencoder resolved to ``root``'s own copy when it has one
    (``with_local_autoencoder``). CheckpointError when the config does not match this code."""
    d = dict(saved)
    if d.get("autoencoder") and not os.path.isabs(d["autoencoder"]):
        d["autoencoder"] = os.path.join(os.path.abspath(root), d["autoencoder"])
    try:
        cfg = TrainConfig.from_dict(d)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {root!r}: its config does not match this code: {e}") from e
    return with_local_autoencoder(cfg, root)


# config.json entries that say where or how a copy was saved, not what the model is (and may hold a local path)
_ENCODER_CONFIG_METADATA = ("transformers_version", "torch_dtype", "dtype")


def encoder_architecture(config: dict) -> dict:
    """A text encoder's config.json without its saving metadata ("_name_or_path" and other "_" keys, the
    transformers version, the stored dtype): what two copies of one model share."""
    return {k: v for k, v in config.items() if not k.startswith("_") and k not in _ENCODER_CONFIG_METADATA}


def read_text_encoder_record(root: str) -> dict | None:
    """ROOT/text_encoder.json (see TEXT_ENCODER_RECORD), or None when ROOT has none (a training run, or an export of
    a model whose encoder needs no directory)."""
    path = os.path.join(root, TEXT_ENCODER_RECORD)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {root!r}: {path!r} is unreadable: {e}") from e
    if not isinstance(record, dict) or not isinstance(record.get("config"), (dict, type(None))):
        raise CheckpointError(f"checkpoint {root!r}: {path!r} does not hold a text-encoder record "
                              f"({{'kind': ..., 'config': {{...}}}})")
    return record


def read_encoder_architecture(directory: str) -> dict | None:
    """``encoder_architecture`` of DIRECTORY/config.json, or None when it is missing or unreadable."""
    try:
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return encoder_architecture(config) if isinstance(config, dict) else None


class TextEncoderMismatch(ValueError):
    """A text encoder directory holds another model than the one a checkpoint's record names."""


def with_text_encoder(cfg: TrainConfig, root: str, directory: str) -> TrainConfig:
    """``cfg`` reading its frozen text encoder from the local ``directory`` instead of where its config names it (an
    export names none: its config holds no path of the machine that made it). ValueError when the model trains its
    own (byte) encoder, when ``directory`` holds no encoder config.json, or when its architecture is not the one
    ROOT's record names (config.json differs beyond saving metadata; the weights are not compared)."""
    text = cfg.model.text
    if text.kind == "byte":
        raise ValueError(f"text_encoder={directory!r}: the model at {root!r} trains its own byte-level text encoder; "
                         f"only a frozen one (minilm, t5) is read from a directory")
    theirs = read_encoder_architecture(directory)
    if theirs is None:
        raise ValueError(f"text_encoder={directory!r} is not a text encoder's directory: it has no readable "
                         f"config.json")
    record = read_text_encoder_record(root)
    if record is not None and record.get("config") is not None and record["config"] != theirs:
        ours = record["config"]
        differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        raise TextEncoderMismatch(f"text_encoder={directory!r} is not the {text.kind} encoder the model at {root!r} "
                                  f"was trained with: its config.json differs in {differ[:8]}")
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, text=dataclasses.replace(text,
                                                                                                  path=directory)))


def check_text_encoder_found(cfg: TrainConfig, root: str) -> None:
    """CheckpointError, saying what to pass (TEXT_ENCODER_FLAG), when the frozen text encoder of ROOT's model is not
    on this machine: a T5-family encoder with no directory (every export and import names none), a directory
    named by a run made elsewhere, or an export's MiniLM that is not the installed default."""
    text = cfg.model.text
    if text.kind == "byte":
        return
    what = f"checkpoint {root!r} reads a frozen {text.kind} text encoder"
    if text.path:
        if not os.path.isdir(text.path):
            raise CheckpointError(f"{what} at {text.path!r}, which is not on this machine: pass a local copy, "
                                  f"{TEXT_ENCODER_FLAG}")
        return
    record = read_text_encoder_record(root)
    if text.kind == "t5" or (record is not None and record.get("config") != _default_encoder_config(text.kind)):
        raise CheckpointError(f"{what} whose files it does not carry: pass its local directory, {TEXT_ENCODER_FLAG} "
                              f"(for Wan2.1: the text_encoder/ folder of its Diffusers download)")


def default_encoder_directory(kind: str) -> str:
    """The installed default of a frozen encoder kind (MiniLM's wheel), or "" when it has none or it is missing."""
    if kind != "minilm":
        return ""
    from streamdit_jax.models.bert import default_minilm_directory
    try:
        return default_minilm_directory()
    except ValueError:  # the wheel is not installed
        return ""


def _default_encoder_config(kind: str) -> dict | None:
    directory = default_encoder_directory(kind)
    return read_encoder_architecture(directory) if directory else None


def with_local_autoencoder(cfg: TrainConfig, workdir: str, stage: bool = False) -> TrainConfig:
    """``cfg`` with its learned autoencoder pointing at WORKDIR's own copy, so a checkpoint moved or cloned to another
    machine still finds it. ``stage`` (training, process 0) first copies ``cfg.autoencoder`` there. CheckpointError
    naming both places if neither holds it. Configs with the patch autoencoder come back unchanged."""
    if not cfg.autoencoder:
        return cfg
    local = os.path.join(workdir, AUTOENCODER_DIR)
    if stage and not is_autoencoder_dir(local) and is_autoencoder_dir(cfg.autoencoder):
        copy_autoencoder(cfg.autoencoder, workdir)
    if is_autoencoder_dir(local):
        return dataclasses.replace(cfg, autoencoder=os.path.abspath(local))
    if is_autoencoder_dir(cfg.autoencoder):
        return cfg
    raise CheckpointError(f"learned autoencoder {cfg.autoencoder!r} not found, and {workdir!r} holds no copy in "
                          f"{AUTOENCODER_DIR}/ (train one with `python -m experiments.train_autoencoder`)")


def file_digests(root: str, entries=("checkpoints", AUTOENCODER_DIR, SAFETENSORS_FILE, CONFIG_JSON,
                                     TEXT_ENCODER_RECORD)) -> dict[str, str]:
    """{path relative to ``root``: sha256} of every file among ``root``'s ``entries`` (files, or folders walked):
    an export's integrity record (``verify_integrity`` checks it). Entries that do not exist are skipped."""
    out = {}
    for entry in entries:
        if os.path.isfile(os.path.join(root, entry)):
            out[entry] = _sha256(os.path.join(root, entry))
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, entry)):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                out[os.path.relpath(path, root)] = _sha256(path)
    return out


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_integrity(root: str) -> bool:
    """Checks ``root``'s integrity record (written by exports) against the files: CheckpointError naming the first
    missing or changed file. False when ``root`` has no record (training workdirs), True when every file matches."""
    path = os.path.join(root, INTEGRITY_FILE)
    if not os.path.exists(path):
        return False
    try:
        with open(path) as f:
            expected = json.load(f)["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {root!r}: its integrity record {path!r} is unreadable: {e}") from e
    for rel, digest in sorted(expected.items()):
        file = os.path.join(root, rel)
        if not os.path.isfile(file):
            raise CheckpointError(f"checkpoint {root!r} is incomplete: {file!r} is missing (listed in {INTEGRITY_FILE})")
        if _sha256(file) != digest:
            raise CheckpointError(f"checkpoint {root!r} is damaged: {file!r} does not match its sha256 in "
                                  f"{INTEGRITY_FILE} (re-copy or re-export the checkpoint)")
    return True


def verify_step_sizes(step_dir: str) -> bool:
    """Checks a saved step's file-size record (training checkpoints; ``Checkpointer.record_sizes``): CheckpointError
    naming the first missing, truncated or grown file. False when the step has no record."""
    path = os.path.join(step_dir, SIZES_FILE)
    if not os.path.exists(path):
        return False
    try:
        with open(path) as f:
            expected = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint step {step_dir!r}: its size record {path!r} is unreadable: {e}") from e
    actual = file_sizes(step_dir)
    for rel, size in expected.items():
        file = os.path.join(step_dir, rel)
        if rel not in actual:
            raise CheckpointError(f"checkpoint step {step_dir!r} is incomplete: {file!r} is missing")
        if actual[rel] != size:
            raise CheckpointError(f"checkpoint step {step_dir!r} is damaged: {file!r} holds {actual[rel]} bytes, "
                                  f"{size} were saved")
    return True


def _suspect_files(step_dir: str) -> str:
    """Empty files under a checkpoint step (what a truncated copy or a full disk leaves), for error messages."""
    empty = [os.path.join(d, n) for d, _, ns in os.walk(step_dir) for n in ns
             if os.path.getsize(os.path.join(d, n)) == 0 and n != "commit_success.txt"]
    return f"; empty files: {sorted(empty)[:5]}" if empty else ""


def _first_line(e: BaseException) -> str:
    """The gist of a (tensorstore / orbax) error: its first line, without the store's spec dump."""
    text = str(e).strip().splitlines()
    line = (text[0] if text else "").split(" See full TensorStore details")[0]
    return f"{type(e).__name__}: {line}"[:400]


def check_finite_params(params, where: str) -> None:
    """CheckpointError naming the parameters that hold NaN or Inf (a damaged file can decode to such values)."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    bad = []
    for path, x in flat:
        count = int(jnp.size(x) - jnp.sum(jnp.isfinite(x)))
        if count:
            bad.append(f"{jax.tree_util.keystr(path)} ({count} non-finite of {x.size})")
    if bad:
        raise CheckpointError(f"checkpoint {where!r} is damaged: non-finite parameters {bad[:5]}"
                              + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))


# The trained model's parameters are {"denoiser": ..., "text_encoder": ...} (models.conditioned); checkpoints written
# while the DiT owned its text encoder hold the DiT's entries at the top level beside "text_encoder".
DENOISER, TEXT_ENCODER = "denoiser", "text_encoder"


def is_legacy_params(tree) -> bool:
    """Whether a parameter tree (or its metadata) has the older layout (no "denoiser" entry)."""
    return isinstance(tree, Mapping) and DENOISER not in tree and "blocks" in tree


def to_legacy_layout(tree):
    """``tree`` with every parameter dict {"denoiser": d, "text_encoder": t} flattened to {**d, "text_encoder": t}
    (also inside optimizer states, whose moments mirror the parameters): a restore target for older checkpoints."""
    def convert(node):
        if isinstance(node, Mapping) and DENOISER in node:
            return {**node[DENOISER], **{k: v for k, v in node.items() if k != DENOISER}}
        return node
    return jax.tree.map(convert, tree, is_leaf=lambda n: isinstance(n, Mapping) and DENOISER in n)


def from_legacy_layout(tree):
    """The inverse of ``to_legacy_layout``."""
    def convert(node):
        if is_legacy_params(node):
            return {DENOISER: {k: v for k, v in node.items() if k != TEXT_ENCODER},
                    **({TEXT_ENCODER: node[TEXT_ENCODER]} if TEXT_ENCODER in node else {})}
        return node
    return jax.tree.map(convert, tree, is_leaf=is_legacy_params)


def saved_tree(state_dir: str):
    """The tree of a saved state item (orbax metadata: names, shapes and dtypes; no array is read)."""
    return ocp.PyTreeCheckpointHandler().metadata(epath.Path(state_dir)).tree


def restore_arrays(state_dir: str, target):
    """The arrays of ``target`` (a tree of ShapeDtypeStruct with shardings: the place each lands) from a saved state
    item: only those (an orbax partial restore: the EMA parameters of a training checkpoint are read without the
    optimizer moments), in the older parameter layout when the checkpoint has it."""
    legacy = is_legacy_params(saved_tree(state_dir).get("ema_params"))
    item = to_legacy_layout(target) if legacy else target
    restored = ocp.Checkpointer(ocp.PyTreeCheckpointHandler()).restore(
        epath.Path(state_dir), args=ocp.args.PyTreeRestore(
            item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item), partial_restore=True))
    return from_legacy_layout(restored) if legacy else restored


def abstract_params(cfg: TrainConfig, mesh, dtype=None):
    """(graphdef, the model's parameters as ShapeDtypeStructs sharded on ``mesh`` per the logical rules)."""
    graphdef, abstract = abstract_model(cfg.model)
    shardings = nnx.to_pure_dict(parallel.state_shardings(abstract, mesh))
    return graphdef, jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, dtype or a.dtype, sharding=s),
                                  nnx.to_pure_dict(abstract), shardings)


def load_safetensors_export(root: str, mesh=None, text_encoder: str | None = None,
                            require_text_encoder: bool = False):
    """(TrainConfig, graphdef, parameters) of a safetensors export (``model.safetensors`` + ``config.json`` +
    its ``autoencoder/``), its integrity record verified first, every tensor checked against the config.
    ``text_encoder`` / ``require_text_encoder``: as in ``load_for_inference``."""
    verify_integrity(root)
    path = os.path.join(root, CONFIG_JSON)
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {root!r}: its config {path!r} is missing or unreadable: {e}") from e
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {root!r}: {path!r} does not hold a JSON object")
    cfg = _with_found_text_encoder(resolve_saved_config(saved, root), root, text_encoder, require_text_encoder)
    if mesh is None:
        mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    graphdef, target = abstract_params(cfg, mesh)
    try:
        params = weights.load(os.path.join(root, SAFETENSORS_FILE), target)
    except WeightsMismatch as e:
        raise CheckpointError(f"checkpoint {root!r}: {e}") from e
    except Exception as e:  # safetensors' own errors of a damaged header or file
        raise CheckpointError(f"checkpoint {root!r}: {os.path.join(root, SAFETENSORS_FILE)!r} cannot be read: "
                              f"{_first_line(e)}") from e
    check_finite_params(params, root)
    return cfg, graphdef, params


def _with_found_text_encoder(cfg: TrainConfig, root: str, text_encoder: str | None, required: bool) -> TrainConfig:
    if text_encoder:
        cfg = with_text_encoder(cfg, root, text_encoder)
    if required:
        check_text_encoder_found(cfg, root)
    return cfg


def load_for_inference(workdir: str, step: int | None = None, mesh=None, text_encoder: str | None = None,
                       require_text_encoder: bool = False):
    """(TrainConfig, graphdef, EMA parameters) from a training WORKDIR, an orbax export (its checkpoints/ folder)
    or a safetensors export (``model.safetensors``; ``step`` does not apply),
    placed on ``mesh`` with its sharding rules (default: one device). Only the EMA parameters are read (never the
    optimizer state). Distillation loads its teacher with the student's mesh. An export's integrity record is
    verified first; restored parameters must be finite. ``text_encoder``: a local directory of the model's frozen
    text encoder, which the config then names (``with_text_encoder``: an export names none); ``require_text_encoder``
    (what sampling needs): CheckpointError before the arrays are read unless that encoder is found here
    (``check_text_encoder_found``)."""
    if os.path.isfile(os.path.join(workdir, SAFETENSORS_FILE)):
        return load_safetensors_export(workdir, mesh, text_encoder, require_text_encoder)
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise CheckpointError(f"checkpoint {workdir!r} not found: expected a training workdir holding checkpoints/ "
                              f"or an export holding checkpoints/ or {SAFETENSORS_FILE}")
    verify_integrity(workdir)
    try:
        ckpt = Checkpointer(workdir, async_save=False, create=False)
    except Exception as e:  # orbax raises many kinds on an unreadable directory
        raise CheckpointError(f"checkpoint {workdir!r} cannot be opened: {_first_line(e)}") from e
    try:
        if ckpt.latest_step() is None:
            raise CheckpointError(f"checkpoint {workdir!r} holds no saved step")
        if step is not None and step not in ckpt.all_steps():
            raise CheckpointError(f"checkpoint {workdir!r} holds no step {step}; saved steps: {ckpt.all_steps()}")
        step = ckpt.latest_step() if step is None else step
        step_dir = os.path.join(ckpt.directory, str(step))
        verify_step_sizes(step_dir)
        cfg = _with_found_text_encoder(resolve_saved_config(_read_item(ckpt, "config", step, step_dir), workdir),
                                       workdir, text_encoder, require_text_encoder)
        export = _read_item(ckpt, "data", step, step_dir).get(INFERENCE_EXPORT)
    finally:
        ckpt.close()
    if mesh is None:
        mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    # an export stores the EMA parameters in export["dtype"]
    graphdef, target = abstract_params(cfg, mesh, jnp.dtype(export["dtype"]) if export else None)
    try:
        params = restore_arrays(os.path.join(step_dir, STATE), {"ema_params": target})["ema_params"]
    except Exception as e:  # tensorstore / orbax / msgpack errors of damaged or mismatched arrays
        raise CheckpointError(f"checkpoint {workdir!r}: the arrays in {os.path.join(step_dir, STATE)!r} "
                              f"cannot be restored: damaged, or they do not match its config "
                              f"({_first_line(e)}){_suspect_files(step_dir)}") from e
    check_finite_params(params, workdir)
    if export:
        dtype = jnp.dtype(cfg.model.param_dtype)
        params = jax.tree.map(lambda x: x.astype(dtype), params)
    return cfg, graphdef, params


def _read_item(ckpt: Checkpointer, item: str, step: int, step_dir: str) -> dict:
    """A JSON item of the checkpoint, or CheckpointError naming its file."""
    path = os.path.join(step_dir, item, "metadata")
    try:
        out = ckpt.read_config(step) if item == "config" else ckpt.read_data(step)
    except Exception as e:
        raise CheckpointError(f"checkpoint item {path!r} is missing or unreadable: {_first_line(e)}") from e
    if not isinstance(out, dict):
        raise CheckpointError(f"checkpoint item {path!r} does not hold a JSON object")
    return out
