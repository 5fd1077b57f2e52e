"""Shared test fixtures: small models with non-trivial weights."""
import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.models import StreamDiT, get_model_config
from streamdit_jax.flow import gaussian_noise


def randomize(model: nnx.Module, seed: int = 0, scale: float = 0.2) -> nnx.Module:
    """Replaces every parameter by random values, so zero-initialised (adaLN-Zero) layers contribute too."""
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [x + scale * gaussian_noise(k, x.shape, x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
              for x, k in zip(leaves, keys)]
    return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))


def tiny_model(seed: int = 0, **overrides) -> StreamDiT:
    return randomize(StreamDiT(get_model_config("tiny", **overrides), rngs=nnx.Rngs(seed)), seed)
