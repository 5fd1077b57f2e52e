"""Model parameters as safetensors: one flat file of named tensors (no pickle), readable by any framework.

A tensor's name is its path in the parameter tree joined by dots, e.g. ``denoiser.blocks.plain.attn.q.kernel``
(stacked block pairs keep their leading layer axis) or ``text_encoder.layers.0.fc1.bias``. Loading places each
tensor on the mesh with the sharding its abstract parameter carries, one tensor at a time, so a host never holds
more than one tensor beyond the device copies.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import jax
import numpy as np

SAFETENSORS_FILE = "model.safetensors"


def _key(entry) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    raise TypeError(f"unsupported tree path entry {entry!r}")


def tensor_name(path) -> str:
    """The dotted safetensors name of a tree path (``jax.tree_util`` key entries)."""
    return ".".join(_key(e) for e in path)


def flatten(params) -> dict[str, Any]:
    """{dotted name: leaf} of a parameter tree (pure dicts and lists)."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    out = {tensor_name(path): leaf for path, leaf in flat}
    if len(out) != len(flat):
        raise ValueError("two parameters flatten to the same safetensors name")
    return out


def save(path: str, params, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes ``params`` (any dtype numpy and ml_dtypes know: float32, float16, bfloat16) to ``path``."""
    from safetensors.numpy import save_file
    tensors = {name: np.ascontiguousarray(np.asarray(jax.device_get(x))) for name, x in flatten(params).items()}
    save_file(tensors, path, metadata=dict(metadata or {}))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # an ordinary file's mode (safetensors creates it 0600)


def read_metadata(path: str) -> dict[str, str]:
    from safetensors import safe_open
    with safe_open(path, framework="numpy") as f:
        return dict(f.metadata() or {})


class WeightsMismatch(ValueError):
    """The file's tensors do not match the parameters the config describes (missing, extra, wrong shape)."""


def load(path: str, abstract, dtype=None):
    """The parameters of ``abstract`` (a tree of ShapeDtypeStruct, each with a sharding) read from ``path``: every
    name must be present with the abstract shape (WeightsMismatch naming the first that is not, and any tensor the
    file holds that the model has no place for). Tensors are cast to ``dtype`` (default: the abstract dtype)."""
    from safetensors import safe_open
    flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    names = [tensor_name(p) for p, _ in flat]
    with safe_open(path, framework="numpy") as f:
        stored = set(f.keys())
        missing = [n for n in names if n not in stored]
        extra = sorted(stored - set(names))
        if missing or extra:
            raise WeightsMismatch(f"{os.path.basename(path)} does not match the model: "
                                  + (f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}" if missing else "")
                                  + ("; " if missing and extra else "")
                                  + (f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}" if extra else ""))
        leaves = []
        for name, (_, a) in zip(names, flat):
            x = f.get_tensor(name)
            if tuple(x.shape) != tuple(a.shape):
                raise WeightsMismatch(f"{os.path.basename(path)}: tensor {name!r} has shape {tuple(x.shape)}, the "
                                      f"model expects {tuple(a.shape)}")
            x = x.astype(np.dtype(dtype or a.dtype))
            sharding = getattr(a, "sharding", None)
            leaves.append(jax.device_put(x, sharding) if sharding is not None else jax.numpy.asarray(x))
    return jax.tree_util.tree_unflatten(treedef, leaves)
