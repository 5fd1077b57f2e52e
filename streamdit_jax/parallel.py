"""One mesh for everything: build it from config, map logical axis names to mesh axes, constrain activations.

Parameters carry LOGICAL axis names (``embed``, ``mlp``, ``heads``, ``layers``, ...) as flax partitioning metadata;
``LOGICAL_RULES`` maps them to mesh axes (``data``, ``fsdp``, ``context``, ``tensor``). Activations are constrained by
logical names too: ``frames_act`` (the token grid's frame axis) goes to ``context`` (context parallelism: each device
holds a slab of frames; window attention stays local when a window's frames do not cross a slab boundary, and the
shifted layers' cyclic roll becomes a neighbour exchange). The train step, the distill step and the
buffer step all use the same mesh and rules; a single GPU is a 1-device mesh running the same code.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from typing import Any, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "context", "tensor")

# logical name -> mesh axis (or tuple of axes, or None = replicated). First match wins.
LOGICAL_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("text_embed", "fsdp"),
    ("patch", None),
    ("freq", None),
    ("vocab", None),
    ("layers", None),
    ("embed_act", None),
    ("frames_act", "context"),
    ("length", None),
)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Mesh shape as (axis name, size) pairs; one size may be -1 (all remaining devices)."""

    axes: tuple[tuple[str, int], ...] = (("data", -1), ("fsdp", 1), ("context", 1), ("tensor", 1))

    def __post_init__(self):
        """ValueError naming the axis: names from MESH_AXES (each once), sizes integers >= 1 or one -1."""
        try:
            axes = tuple((name, size) for name, size in self.axes)
        except (TypeError, ValueError):
            raise ValueError(f"mesh axes={self.axes!r} must be (name, size) pairs, e.g. "
                             f"{MeshConfig.__dataclass_fields__['axes'].default}") from None
        if not axes:
            raise ValueError(f"mesh has no axes; give at least one of {MESH_AXES}")
        names = [n for n, _ in axes]
        unknown = [n for n in names if n not in MESH_AXES]
        if unknown:
            raise ValueError(f"mesh axes {unknown} are unknown; valid axes: {MESH_AXES}")
        if len(set(names)) != len(names):
            raise ValueError(f"mesh axes {names} name an axis twice; each of {MESH_AXES} at most once")
        for name, size in axes:
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or (size < 1 and size != -1):
                raise ValueError(f"mesh.{name}={size!r} must be an integer >= 1, or -1 (all remaining devices)")
        if [s for _, s in axes].count(-1) > 1:
            raise ValueError(f"mesh {dict(axes)}: at most one axis may be -1 (all remaining devices), got -1 for "
                             f"{[n for n, s in axes if s == -1]}")
        object.__setattr__(self, "axes", tuple((n, int(s)) for n, s in axes))

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> "MeshConfig":
        return cls(tuple((k, int(v)) for k, v in d.items()))

    @classmethod
    def parse(cls, text: str) -> "MeshConfig":
        """"name:size,..." (e.g. "fsdp:16,context:4", a command line's --mesh) -> MeshConfig."""
        try:
            return cls(tuple((n, int(s)) for n, s in (part.split(":") for part in text.split(","))))
        except ValueError as e:
            raise ValueError(f"mesh {text!r} must be name:size,... ({e})") from None

    def resolve(self, num_devices: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        names = tuple(n for n, _ in self.axes)
        sizes = [s for _, s in self.axes]
        unknown = [n for n in names if n not in MESH_AXES]
        if unknown:
            raise ValueError(f"mesh axes {unknown} are unknown; valid axes: {MESH_AXES}")
        if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
            raise ValueError(f"mesh {dict(self.axes)}: sizes must be positive, with at most one -1")
        fixed = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if num_devices % fixed:
                raise ValueError(f"mesh {dict(self.axes)} cannot fill {num_devices} devices "
                                 f"({num_devices} is not divisible by {fixed})")
            sizes[sizes.index(-1)] = num_devices // fixed
        if math.prod(sizes) != num_devices:
            raise ValueError(f"mesh {dict(self.axes)} needs {math.prod(sizes)} devices but {num_devices} are given")
        return names, tuple(sizes)


def make_mesh(config: MeshConfig = MeshConfig(), devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds the mesh with Auto axes (GSPMD propagation, which flax's logical-name flow expects)."""
    devices = list(jax.devices() if devices is None else devices)
    names, sizes = config.resolve(len(devices))
    return jax.make_mesh(sizes, names, axis_types=(AxisType.Auto,) * len(names), devices=devices)


def logical_to_mesh(names: Sequence[str | None], rules=LOGICAL_RULES, mesh: Mesh | None = None,
                    shape: Sequence[int] | None = None) -> P:
    """Maps logical axis names to a mesh PartitionSpec.

    Mesh axes missing from ``mesh`` or already used by an earlier dimension are dropped; with ``shape`` given, so are
    axes whose size does not divide that dimension (the array stays replicated along them instead of padded).
    """
    rule = dict(rules)
    used: set[str] = set()
    out = []
    for i, name in enumerate(names):
        target = rule.get(name) if name is not None else None
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        kept = []
        for ax in axes:
            if ax in used or (mesh is not None and ax not in mesh.shape):
                continue
            if shape is not None and mesh is not None:
                if shape[i] % (mesh.shape[ax] * math.prod(mesh.shape[a] for a in kept)):
                    continue
            kept.append(ax)
        used.update(kept)
        out.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    return P(*out)


def state_shardings(abstract_state, mesh: Mesh, rules=LOGICAL_RULES):
    """NamedShardings for every leaf of an (abstract) nnx State, from the variables' logical-name metadata."""

    def one(var):
        names = var.get_metadata().get("out_sharding") if isinstance(var, nnx.Variable) else None
        value = var.get_value() if isinstance(var, nnx.Variable) else var
        shape = getattr(value, "shape", ())
        spec = logical_to_mesh(names, rules, mesh, shape) if names else P()
        sharding = NamedSharding(mesh, spec)
        return var.replace(sharding) if isinstance(var, nnx.Variable) else sharding

    return jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))


_ACTIVE_RULES: contextvars.ContextVar = contextvars.ContextVar("streamdit_rules", default=None)


@contextlib.contextmanager
def activate(mesh: Mesh, rules=LOGICAL_RULES):
    """Enters ``mesh`` (jax.set_mesh) and makes ``rules`` the ones ``constrain`` uses while tracing."""
    token = _ACTIVE_RULES.set((mesh, tuple(rules)))
    try:
        with jax.set_mesh(mesh):
            yield mesh
    finally:
        _ACTIVE_RULES.reset(token)


@contextlib.contextmanager
def outside_mesh():
    """No mesh while inside: abstract models (``nnx.eval_shape``) built here carry no sharding. Inside ``activate``
    flax would turn each parameter's LOGICAL axis names into a NamedSharding of the active mesh, and fail (they are
    not mesh axes); shardings come from ``state_shardings`` instead."""
    with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((), ())):
        yield


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Sharding constraint on an activation by logical names; a no-op outside ``activate`` or on one device."""
    active = _ACTIVE_RULES.get()
    if active is None:
        return x
    mesh, rules = active
    if mesh.size == 1:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, logical_to_mesh(names, rules, mesh, x.shape)))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, ndim: int, rules=LOGICAL_RULES, shape=None) -> NamedSharding:
    """Sharding of an activation/batch array whose leading axis is the batch."""
    return NamedSharding(mesh, logical_to_mesh(("batch",) + (None,) * (ndim - 1), rules, mesh, shape))


def num_params(state) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(state)))


DISTRIBUTED_ENV = "STREAMDIT_DISTRIBUTED"


def distributed_requested() -> bool:
    """Whether the environment asks for a multi-process run (STREAMDIT_DISTRIBUTED=1, set by the launch scripts):
    the default of the entry points' --distributed flag."""
    import os

    return os.environ.get(DISTRIBUTED_ENV, "") == "1"


def initialize_distributed() -> None:
    """``jax.distributed.initialize`` for multi-process runs; call only when asked (flag or environment).

    Explicit settings come from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID when set (any platform,
    CPU included: then gloo collectives); otherwise jax auto-detects the cluster (Cloud TPU, Slurm, ...).
    """
    import logging
    import os

    env = {k: os.environ.get(k) for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
    if env["JAX_NUM_PROCESSES"] is not None and env["JAX_PROCESS_ID"] is not None:
        if os.environ.get("JAX_PLATFORMS", "").startswith("cpu"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                                   num_processes=int(env["JAX_NUM_PROCESSES"]),
                                   process_id=int(env["JAX_PROCESS_ID"]))
    else:
        jax.distributed.initialize()
    logging.getLogger(__name__).info("jax.distributed: process %d of %d, %d local / %d global devices",
                                     jax.process_index(), jax.process_count(), jax.local_device_count(),
                                     jax.device_count())


# Processes can reach the same point minutes apart (one compiles a step more slowly on a busy host), while XLA:CPU's
# gloo collectives give up after 30 s; the coordination service's barrier waits as long as it is told to.
BARRIER_TIMEOUT_ENV = "STREAMDIT_BARRIER_TIMEOUT_S"
_barrier_count = 0


def barrier(name: str, timeout_s: float | None = None) -> None:
    """Waits until every process reaches this point (a no-op for one process). It goes through jax.distributed's
    coordination service, not a device collective, so the wait is bounded by ``timeout_s`` (default
    $STREAMDIT_BARRIER_TIMEOUT_S or 600 s), not by the collectives' own timeout. Every process must call the same
    barriers in the same order."""
    global _barrier_count
    if jax.process_count() == 1:
        return
    import os

    from jax._src import distributed

    timeout_s = float(os.environ.get(BARRIER_TIMEOUT_ENV, 600)) if timeout_s is None else timeout_s
    _barrier_count += 1
    distributed.global_state.client.wait_at_barrier(f"streamdit-{_barrier_count}-{name}", int(timeout_s * 1000))


def compile_then_sync(jitted, name: str):
    """``jitted`` for multi-process runs: its first call compiles ahead of time, waits at a ``barrier`` until every
    process has compiled it too, then runs; later calls run the compiled program directly (same shapes). Without the
    barrier a process that compiles more than 30 s later than the others leaves them waiting in the program's first
    collective until gloo times out. One process: ``jitted`` unchanged."""
    if jax.process_count() == 1:
        return jitted
    compiled = []

    def call(*args):
        if not compiled:
            compiled.append(jitted.lower(*args).compile())
            barrier(f"compiled-{name}")
        return compiled[0](*args)

    return call
