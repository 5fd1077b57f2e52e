"""Pure training steps (no I/O): buffered flow matching with mixed chunk sizes (Eq. 5, Eq. 8, Sec. 3.2).

The state is a pytree of plain dicts and arrays (``TrainState``); the model's graphdef stays outside and is merged
inside the step (``nnx.merge``), so the step is one ``jax.jit`` with in/out shardings and donation on the mesh.
"""
from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from streamdit_jax import flow, parallel
from streamdit_jax.pixels import frames_to_float
from streamdit_jax.models.conditioned import ConditionedModel, text_encoder_of
from streamdit_jax.models.factory import abstract_model
from streamdit_jax.models.text import is_trainable
from streamdit_jax.partition import mixed_chunk_tau
from streamdit_jax.configs import OptimConfig, TrainConfig


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 []
    params: Any  # pure dict of parameters
    opt_state: Any
    ema_params: Any  # exponential moving average of params (used for sampling and evaluation)
    rng: jax.Array  # uint32 [2] raw key (checkpointable)


def lr_schedule(optim: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up to ``learning_rate``, then cosine decay to ``learning_rate * end_lr_factor``."""
    return optax.warmup_cosine_decay_schedule(0.0, optim.learning_rate, max(optim.warmup_steps, 1),
                                              max(total_steps, optim.warmup_steps + 1),
                                              end_value=optim.learning_rate * optim.end_lr_factor)


def make_optimizer(optim: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """AdamW + warm-up/cosine schedule + global-norm clipping. Weight decay on matrices only (kernels and token
    embeddings, selected by name: stacked blocks give biases and norm scales a leading layer axis too)."""
    decay_mask = lambda params: jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) in ("kernel", "embedding"), params)
    return optax.chain(optax.clip_by_global_norm(optim.grad_clip),
                       optax.adamw(lr_schedule(optim, total_steps), b1=optim.b1, b2=optim.b2,
                                   weight_decay=optim.weight_decay, mask=decay_mask))


def init_train_state(params, tx: optax.GradientTransformation, seed: int) -> TrainState:
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      ema_params=jax.tree.map(jnp.copy, params), rng=jax.random.PRNGKey(seed))


def frames_to_latents(frames_uint8: jax.Array, autoencoder, autoencoder_params) -> jax.Array:
    """uint8 frames [b, T, H, W, 3] -> latents [b, t, h, w, C] (``autoencoder.encode`` with its parameters)."""
    return autoencoder.encode(autoencoder_params, frames_to_float(frames_uint8))


def drop_text(rng, tokens: jax.Array, rate: float, null_tokens) -> jax.Array:
    """Replaces each example's prompt by the null prompt "" (``null_tokens`` [1, L]: the text encoder's tokens of
    "") with probability ``rate`` (CFG training)."""
    drop = jax.random.bernoulli(rng, rate, (tokens.shape[0], 1))
    return jnp.where(drop, jnp.asarray(null_tokens, tokens.dtype), tokens)


def batch_text(model, batch: dict, rng, rate: float, text_params=None):
    """(embeddings [b, L, D], mask [b, L]) of a batch's prompts, each replaced by the null prompt with probability
    ``rate`` (CFG training; 0: none, 1: all).

    On the fly: ``batch["tokens"]`` through the model's text encoder: a trainable one inside the model
    (``model.encode_text``; gradients reach it), a frozen one with ``text_params`` (its weights; no gradient).
    Precomputed (a frozen encoder run once over the captions): ``batch["text"]`` and ``batch["text_mask"]``,
    with the null prompt's embeddings ``batch["null_text"]`` [1, L, D] / ``batch["null_text_mask"]`` [1, L] (the
    same on every process, replicated: ``loop.SHARED_BATCH_KEYS``) when ``rate`` > 0. Both draw the same drop decisions from the same key."""
    if "tokens" in batch:
        encoder = text_encoder_of(model.cfg)
        tokens = batch["tokens"]
        if rate > 0:
            tokens = drop_text(rng, tokens, rate, encoder.tokenize([""]))
        if encoder.trainable:
            return model.encode_text(tokens)
        if text_params is None:
            raise ValueError(f"text encoder {encoder.name!r} is frozen: the step needs its text_params")
        return jax.lax.stop_gradient(encoder.encode(text_params, tokens))
    missing = [k for k in ("text", "text_mask") + (("null_text", "null_text_mask") if rate > 0 else ())
               if k not in batch]
    if missing:
        raise ValueError(f"a batch needs 'tokens' (text encoded on the fly) or precomputed 'text' + 'text_mask' "
                         f"(+ 'null_text' + 'null_text_mask' for caption dropout {rate}); missing {missing} of "
                         f"{sorted(batch)}")
    text, mask = batch["text"], batch["text_mask"]
    if rate > 0:
        drop = jax.random.bernoulli(rng, rate, (text.shape[0], 1))
        # [:1]: one null row (a batch built by other code may carry more, all equal)
        text = jnp.where(drop[..., None], batch["null_text"][:1].astype(text.dtype), text)
        mask = jnp.where(drop, batch["null_text_mask"][:1].astype(mask.dtype), mask)
    return text, mask


def buffered_fm_loss(params, graphdef, latents, batch, rng, cfg: TrainConfig, steady=None, text_params=None):
    """Eq. 5 loss of one batch: per-example chunk size c ~ mix, per-chunk tau (Eq. 8), one X0 per buffer,
    velocity target (Eq. 3), reference frames masked out. Returns (mean loss, aux).

    steady: bool [b], whether each window's caption holds at every frame; given (cfg.t2v_steady_windows), only
    those windows may be drawn as plain T2V examples."""
    mix = cfg.mix()
    tau_rng, noise_rng, drop_rng = jax.random.split(rng, 3)
    tau, chunk = mixed_chunk_tau(tau_rng, mix, latents.shape[0], cfg.schedule, t2v_allowed=steady)
    x0 = flow.gaussian_noise(noise_rng, latents.shape, latents.dtype)
    x_tau = flow.interpolate(latents, x0, tau)
    target = flow.velocity_target(latents, x0)
    model = nnx.merge(graphdef, params)
    text, text_mask = batch_text(model, batch, drop_rng, cfg.text_dropout, text_params)
    v = model(x_tau, tau, text, text_mask)
    per_example = flow.flow_matching_loss(v, target, mix.frame_mask())
    return jnp.mean(per_example), (per_example, chunk)


def ema_decay_at(cfg: TrainConfig, step):
    """EMA decay for the update after ``step``: with ``cfg.ema_warmup`` min(decay, (1 + step) / (10 + step)).

    A constant 0.999 keeps exp(-step / 1000) of the random init in the average (25% at step 1,400), which made the
    EMA of a short CPU run sample noise while the raw parameters already drew shapes; the warm-up lets the average
    follow the parameters early and reach the configured decay after ~10 / (1 - decay) steps.
    """
    if not cfg.ema_warmup:
        return jnp.float32(cfg.ema_decay)
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(jnp.float32(cfg.ema_decay), (1.0 + step) / (10.0 + step))


def apply_gradients(state: TrainState, loss, grads, *, tx: optax.GradientTransformation, cfg: TrainConfig):
    """Optimizer update + EMA (shared by training and distillation). A non-finite loss or gradient leaves the state
    unchanged (metrics['finite'] = 0), so the loop can stop with the last good parameters.
    ``autoencoder_params``: the config's autoencoder's ``params`` (frames batches; None for latent batches)."""
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = ema_decay_at(cfg, state.step)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updated = TrainState(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema, rng=state.rng)
    new_state = jax.lax.cond(finite, lambda: updated, lambda: state)  # one branch, not a select per leaf
    metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite.astype(jnp.float32),
               "learning_rate": lr_schedule(cfg.optim, cfg.total_steps)(state.step)}
    return new_state, metrics


def batch_latents(batch: dict, cfg: TrainConfig, autoencoder_params) -> jax.Array:
    """Latents [b, B, h, w, C] of a batch ({"frames": uint8} through the config's autoencoder with
    ``autoencoder_params``, or {"latents"}), constrained to the mesh's batch and context axes."""
    if "latents" in batch:  # precomputed latents (the autoencoder ran offline: data.latent_source="precomputed")
        latents = batch["latents"].astype(jnp.float32)
    else:
        latents = frames_to_latents(batch["frames"], cfg.make_autoencoder(), autoencoder_params)
    return parallel.constrain(latents, ("batch", "frames_act", None, None, None))


def replicated_frozen_params(cfg: TrainConfig, mesh) -> dict:
    """The weights a step uses but never trains, replicated on ``mesh``: {"autoencoder": the config's autoencoder's
    ``params`` (None when batches carry precomputed latents: neither loaded nor placed), "text_encoder": a frozen text encoder's ``params``
    (None for a trainable one, whose weights are in the train state, and with ``data.text_source="precomputed"``:
    batches carry the embeddings, so the encoder is neither loaded nor placed on the mesh)}. An argument of every
    train / distill step, so no weight is a constant compiled into it."""
    on_the_fly = cfg.data.text_source != "precomputed" and not is_trainable(cfg.model.text)
    encodes = (cfg.autoencoder_factor or cfg.autoencoder) and cfg.data.latent_source != "precomputed"
    out = {"autoencoder": cfg.make_autoencoder().params if encodes else None,
           "text_encoder": text_encoder_of(cfg.model).params if on_the_fly else None}
    return jax.device_put(jax.tree.map(np.asarray, out), parallel.replicated(mesh))


def train_step(state: TrainState, batch: dict, frozen=None, *, graphdef, tx: optax.GradientTransformation,
               cfg: TrainConfig):
    """One optimizer step on {"frames": uint8 [b, B, H, W, 3] or "latents": [b, B, h, w, C]} with the prompts as
    "tokens" [b, L] or precomputed embeddings (``batch_text``). A non-finite loss or gradient leaves the state
    unchanged (metrics['finite'] = 0), so the loop can stop with the last good parameters.
    ``frozen``: ``replicated_frozen_params`` (None: a batch of latents with a trainable text encoder)."""
    frozen = frozen or {}
    rng = jax.random.fold_in(state.rng, state.step)
    latents = batch_latents(batch, cfg, frozen.get("autoencoder"))
    steady = None
    if cfg.t2v_steady_windows:
        if "steady" not in batch:
            raise ValueError(f"config t2v_steady_windows=True needs batches with a 'steady' flag per window (the "
                             f"data pipeline's SampleWindow emits it); this batch has {sorted(batch)}")
        steady = batch["steady"]
    (loss, (per_example, chunk)), grads = jax.value_and_grad(buffered_fm_loss, has_aux=True)(
        state.params, graphdef, latents, batch, rng, cfg, steady, frozen.get("text_encoder"))
    new_state, metrics = apply_gradients(state, loss, grads, tx=tx, cfg=cfg)
    for c in cfg.chunk_sizes:  # loss per chunk size: how each partition of the mix is learned
        sel = (chunk == c).astype(jnp.float32)
        metrics[f"loss_c{c}_sum"], metrics[f"loss_c{c}_count"] = jnp.sum(per_example * sel), jnp.sum(sel)
    return new_state, metrics


def train_state_shardings(abstract_state: TrainState, param_shardings, mesh, tx):
    """Shardings of the whole train state: params and EMA per the logical rules, optimizer moments like their
    parameters, scalars replicated."""
    rep = parallel.replicated(mesh)
    opt = optax.tree_map_params(tx, lambda _, s: s, abstract_state.opt_state, param_shardings,
                                transform_non_params=lambda _: rep)
    return TrainState(step=rep, params=param_shardings, opt_state=opt, ema_params=param_shardings, rng=rep)


def batch_shardings(mesh, batch_like: dict) -> dict:
    return {k: parallel.batch_sharding(mesh, v.ndim, shape=v.shape) for k, v in batch_like.items()}


def make_train_step(cfg: TrainConfig, graphdef, tx, state_shardings, batch_sharding):
    """``train_step(state, batch, frozen)`` jitted once with in/out shardings and the state donated (the frozen
    weights replicated)."""
    fn = functools.partial(train_step, graphdef=graphdef, tx=tx, cfg=cfg)
    rep = parallel.replicated(state_shardings.step.mesh)
    return jax.jit(fn, in_shardings=(state_shardings, batch_sharding, rep), out_shardings=(state_shardings, None),
                   donate_argnums=(0,))


def fresh_params(cfg: TrainConfig, mesh):
    """The model's freshly initialised parameters (seed ``cfg.seed``), sharded on ``mesh`` as in the train state."""
    _, _, _, shardings = abstract_train_state(cfg, mesh)
    with parallel.activate(mesh):
        return jax.jit(lambda: _init_params(cfg), out_shardings=shardings.params)()


def _init_params(cfg: TrainConfig):
    return nnx.to_pure_dict(nnx.split(ConditionedModel(cfg.model, rngs=nnx.Rngs(cfg.seed)))[1])


def create_train_state(cfg: TrainConfig, mesh, init_params=None):
    """Model + optimizer state initialised directly sharded on ``mesh``: (graphdef, tx, state, state_shardings).
    ``init_params`` (e.g. a distillation teacher's, already on the mesh) replaces the random initialisation."""
    graphdef, tx, _, shardings = abstract_train_state(cfg, mesh)

    def init(given):
        params = given if given is not None else _init_params(cfg)
        return init_train_state(params, tx, cfg.seed)

    with parallel.activate(mesh):
        state = jax.jit(init, out_shardings=shardings)(init_params)
    return graphdef, tx, state, shardings


def abstract_train_state(cfg: TrainConfig, mesh):
    """(graphdef, tx, abstract state with the CURRENT mesh's shardings, shardings): a restore target, no allocation."""
    graphdef, abstract = abstract_model(cfg.model)
    param_shardings = nnx.to_pure_dict(parallel.state_shardings(abstract, mesh))
    tx = make_optimizer(cfg.optim, cfg.total_steps)
    shapes = jax.eval_shape(lambda p: init_train_state(p, tx, cfg.seed), nnx.to_pure_dict(abstract))
    shardings = train_state_shardings(shapes, param_shardings, mesh, tx)
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), shapes, shardings)
    return graphdef, tx, target, shardings
