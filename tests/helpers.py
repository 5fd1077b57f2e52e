"""Shared test fixtures: small models with non-trivial weights; the environment for command-line tools under test."""
import os

import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.models import ConditionedModel, get_model_config
from streamdit_jax.flow import gaussian_noise


def randomize(model: nnx.Module, seed: int = 0, scale: float = 0.2) -> nnx.Module:
    """Replaces every parameter by random values, so zero-initialised (adaLN-Zero) layers contribute too."""
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [x + scale * gaussian_noise(k, x.shape, x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
              for x, k in zip(leaves, keys)]
    return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))


def tiny_model(seed: int = 0, **overrides) -> ConditionedModel:
    return randomize(ConditionedModel(get_model_config("tiny", **overrides), rngs=nnx.Rngs(seed)), seed)


def subprocess_env(drop_jax_settings: bool = False) -> dict:
    """This process's environment for a child process: the same XLA flags (conftest's fast compile) but not the 8
    fake devices (the CLIs run on one), and without JAX_* settings when ``drop_jax_settings`` (a child that sets up
    jax.distributed itself); the persistent compilation cache directory is always kept."""
    env = {k: v for k, v in os.environ.items()
           if not (drop_jax_settings and k.startswith("JAX_") and k != "JAX_COMPILATION_CACHE_DIR")}
    env["XLA_FLAGS"] = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                                if not f.startswith("--xla_force_host_platform_device_count"))
    return env
