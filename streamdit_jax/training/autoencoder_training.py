"""Training the learned frame autoencoder (``streamdit_jax.models.learned_autoencoder``) on shapes-world frames.

The frames come from ``num_clips`` rendered clips (seeds from TRAIN_SEED0 up, disjoint from the DiT's training and
evaluation seeds). The loss is foreground-weighted (objects cover ~6% of a frame; an unweighted loss learns the
background first and blurs shapes) and the decoder sees latents perturbed by ``latent_noise`` relative noise (so it
tolerates a diffusion model's imperfect latents). After training, ``latent_statistics`` gives the per-channel shift
and scale that standardise the latents. ``score_reconstruction`` runs the shapes-world evaluator on
decode(encode(video)) of held-out clips (seeds from EVAL_SEED0 up): an autoencoder that loses shape or motion caps
every model trained on its latents.
"""
from __future__ import annotations

import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from streamdit_jax import shapes_world as shapes
from streamdit_jax.pixels import float_to_frames, frames_to_float
from streamdit_jax.evaluation import evaluate_many
from streamdit_jax.models import learned_autoencoder as lae

TRAIN_SEED0, EVAL_SEED0, CLIP_LEN = 1_000_000, 2_000_000, 64
LOSSES = ("palette", "l1", "mse")

_log = logging.getLogger(__name__)


def autoencoder_config(world: shapes.ShapesWorldConfig, latent_channels: int, widths: tuple[int, ...],
                       space_to_depth: int, loss: str = "palette") -> lae.ConvAutoencoderConfig:
    """The architecture; a ``palette`` loss makes the decoder classify each pixel into the world's colours
    (background first), the other losses regress RGB."""
    palette = ((world.background,) + tuple(shapes.COLOUR_RGB[c] for c in shapes.COLOURS)
               if loss == "palette" else ())
    return lae.ConvAutoencoderConfig(latent_channels, tuple(widths), space_to_depth, palette)


def render_frames(num_clips: int, world: shapes.ShapesWorldConfig) -> np.ndarray:
    return np.concatenate([shapes.render(TRAIN_SEED0 + i, CLIP_LEN, world).frames for i in range(num_clips)])


def palette_labels(frames_u8, palette: jax.Array) -> jax.Array:
    """Index of each pixel's nearest palette colour [..., H, W] (exact for rendered frames)."""
    d = jnp.sum((frames_u8[..., None, :].astype(jnp.float32) - palette) ** 2, axis=-1)
    return jnp.argmin(d, axis=-1)


def ae_loss(model: lae.ConvAutoencoder, frames_u8, rng, latent_noise: float, foreground_weight: float,
            background: jax.Array, kind: str = "palette"):
    x = frames_to_float(frames_u8)
    z = model.encode(x)
    rms = jax.lax.stop_gradient(jnp.sqrt(jnp.mean(z * z) + 1e-6))
    y = model.decode_outputs(z + latent_noise * rms * jax.random.normal(rng, z.shape))
    foreground = jnp.any(frames_u8 != background, axis=-1)
    weight = 1.0 + (foreground_weight - 1.0) * foreground
    if kind == "palette":
        palette = jnp.asarray(model.config.palette, jnp.float32)
        error = optax.softmax_cross_entropy_with_integer_labels(y, palette_labels(frames_u8, palette))
    else:
        error = jnp.mean(jnp.abs(y - x) if kind == "l1" else (y - x) ** 2, axis=-1)
    return jnp.sum(weight * error) / jnp.sum(weight)


def check_training_args(prefix: str = "", **values) -> None:
    """ValueError naming the first bad ``train_autoencoder`` argument among those given: ``steps``, ``batch_size``,
    ``num_clips`` ints >= 1, ``loss`` one of LOSSES (``prefix``: "--" for command-line flags)."""
    for name, value in values.items():
        if name == "loss":
            if value not in LOSSES:
                raise ValueError(f"{prefix}loss={value!r} is invalid: valid is one of {', '.join(map(repr, LOSSES))}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{prefix}{name}={value!r} must be an int >= 1")


def train_autoencoder(config: lae.ConvAutoencoderConfig, world: shapes.ShapesWorldConfig, *, steps: int = 2000,
                      batch_size: int = 32, learning_rate: float = 1e-3, latent_noise: float = 0.1,
                      loss: str = "palette", foreground_weight: float = 10.0, num_clips: int = 512, seed: int = 0,
                      progress: bool = True) -> tuple[lae.ConvAutoencoder, np.ndarray, np.ndarray, dict]:
    """Trains a new ConvAutoencoder on the frames of ``num_clips`` rendered clips of ``world``; returns it with the
    [C] shift and scale of its raw latents and the description ``save_autoencoder`` stores as "info".

    Adam with a cosine decay from ``learning_rate`` after 100 warm-up steps, gradients clipped to norm 1 (2e-3
    without clipping diverged at step ~700 with the palette loss). ``seed`` sets the initialisation, the batch order
    and the latent noise. ``loss`` is one of LOSSES; "palette" needs a config with a palette (``autoencoder_config``).
    """
    check_training_args(steps=steps, batch_size=batch_size, num_clips=num_clips, loss=loss)
    t0 = time.time()
    frames = render_frames(num_clips, world)
    _log.info("rendered %d frames in %.1fs", len(frames), time.time() - t0)
    model = lae.new_autoencoder(config, seed)
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, 100, max(steps, 101))
    optimizer = nnx.Optimizer(model, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule)), wrt=nnx.Param)
    background = jnp.asarray(world.background, jnp.uint8)

    @nnx.jit
    def step(model, optimizer, batch, rng):
        value, grads = nnx.value_and_grad(ae_loss)(model, batch, rng, latent_noise, foreground_weight, background,
                                                   loss)
        optimizer.update(model, grads)
        return value

    order = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    bar = tqdm(range(steps), desc="autoencoder", unit="step", disable=not progress)
    for i in bar:
        batch = frames[order.integers(len(frames), size=batch_size)]
        value = step(model, optimizer, jnp.asarray(batch), jax.random.fold_in(key, i))
        if i % 100 == 0 or i == steps - 1:
            bar.set_postfix(loss=f"{float(value):.5f}")
    train_seconds = time.time() - t0

    encode = jax.jit(lambda x: model.encode(frames_to_float(x)))
    shift, scale = lae.latent_statistics(encode, [frames[i:i + 512] for i in range(0, min(len(frames), 8192), 512)])
    info = {"steps": steps, "loss": loss, "batch_size": batch_size, "num_clips": num_clips,
            "frame_size": world.frame_size, "two_object_prob": world.two_object_prob,
            "final_loss": float(value), "train_seconds": round(train_seconds, 1)}
    return model, shift, scale, info


def score_reconstruction(ae: lae.LearnedAutoencoder, world: shapes.ShapesWorldConfig, num_clips: int) -> dict:
    """The evaluator on decode(encode(video)) of held-out clips (an upper bound for any model on these latents)."""
    roundtrip = jax.jit(lambda p, x: ae.decode(p, ae.encode(p, x)))
    videos = []
    for i in range(num_clips):
        clip = shapes.render(EVAL_SEED0 + i, 256, world)
        videos.append((float_to_frames(roundtrip(ae.params, frames_to_float(clip.frames))), clip.captions))
    result = evaluate_many(videos)
    return {k: result[k] for k in ("present", "colour", "shape", "direction")}
