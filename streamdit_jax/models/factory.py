"""Creating the trained model (``models.conditioned``) directly sharded on a mesh (jitted init with out_shardings:
no host copy of the weights), and its analytic FLOP count whatever its architecture."""
from __future__ import annotations

import jax
from flax import nnx

from streamdit_jax import parallel
from streamdit_jax.models import dit, wan
from streamdit_jax.models.config import ModelConfig
from streamdit_jax.models.conditioned import ConditionedModel

FLOP_COUNTS = {"streamdit": dit.forward_flops, "wan": wan.forward_flops}  # ModelConfig.arch -> its analytic count


def forward_flops(cfg: ModelConfig, latent_shape, text_len: int | None = None, batch: int = 1) -> float:
    """Analytic FLOPs of one forward pass of the velocity model ``cfg.arch`` names (models.dit.forward_flops or
    models.wan.forward_flops: matmuls and attention, 2 FLOPs per multiply-add, the text encoder excluded) on latents
    [F, H, W(, C)] with ``text_len`` text tokens (default cfg.text.max_len)."""
    return FLOP_COUNTS[cfg.arch](cfg, latent_shape, text_len=text_len, batch=batch)


def abstract_model(cfg: ModelConfig):
    """(graphdef, abstract state) without allocating anything (jax.eval_shape), also inside an active mesh."""
    with parallel.outside_mesh():
        return nnx.split(nnx.eval_shape(lambda: ConditionedModel(cfg, rngs=nnx.Rngs(0))))


def create_model(cfg: ModelConfig, seed: int = 0, mesh=None, rules=parallel.LOGICAL_RULES):
    """Returns (graphdef, state) with the state initialised on device, sharded per the logical rules on ``mesh``
    (a 1-device mesh of the default device when None)."""
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1]) if mesh is None else mesh
    graphdef, abstract = abstract_model(cfg)
    shardings = parallel.state_shardings(abstract, mesh, rules)

    def init():
        return nnx.split(ConditionedModel(cfg, rngs=nnx.Rngs(seed)))[1]

    with parallel.activate(mesh, rules):
        state = jax.jit(init, out_shardings=shardings)()
    return graphdef, state
