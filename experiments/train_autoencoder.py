r"""Train the learned frame autoencoder (streamdit_jax.models.learned_autoencoder) on shapes-world frames.

  python -m experiments.train_autoencoder --output=/tmp/ae [--steps=3000] [--latent_channels=8]

Renders --num_clips clips of the shapes world (seeds from 1,000,000 up, disjoint from the DiT's training and
evaluation seeds), trains with a foreground-weighted MSE (objects cover ~6% of a frame; unweighted MSE learns the
background first and blurs shapes) on latents perturbed by 10% noise (so the decoder tolerates a diffusion model's
imperfect latents), measures per-channel latent statistics, and saves the directory atomically. It then scores the
reconstruction of --num_eval_clips held-out videos with the shapes-world evaluator: an autoencoder that loses shape
or motion would cap every model trained on its latents, so the numbers are printed and stored in the directory's
autoencoder.json ("info"). A few minutes on 2 CPU cores; not resumable (rerun it).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags, logging
from flax import nnx
from experiments.flag_parsing import parse_flags
from tqdm import tqdm

from streamdit_jax import shapes_world as shapes
from streamdit_jax.pixels import float_to_frames, frames_to_float
from streamdit_jax.evaluation import evaluate_many
from streamdit_jax.models import learned_autoencoder as lae

flags.DEFINE_string("output", None, "Directory to write (replaced atomically if it exists).", required=True)
flags.DEFINE_integer("frame_size", 32, "Shapes-world frame size (as the DiT config's data.frame_size).")
flags.DEFINE_integer("latent_channels", 8, "Latent channels C (the paper's VAE: 8).")
flags.DEFINE_integer("space_to_depth", 2, "Pixels folded into channels by the stem (per side).")
flags.DEFINE_list("widths", ["32", "64", "128"], "Stem width and one width per 2x down-sampling level (with "
                  "--space_to_depth=2, 3 entries give factor 8: the paper's spatial compression).")
flags.DEFINE_integer("steps", 2000, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 32, "Frames per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak Adam learning rate (cosine decay, 100 warm-up steps; gradients "
                   "clipped to norm 1: 2e-3 without clipping diverged at step ~700 with the palette loss).")
flags.DEFINE_float("latent_noise", 0.1, "Relative noise added to latents while training the decoder.")
flags.DEFINE_enum("loss", "palette", ["palette", "l1", "mse"], "palette: classify each pixel into the world's "
                  "colours (cross-entropy; crisp edges); l1 / mse: regress RGB (blurs the edge pixels that tell "
                  "circles from squares).")
flags.DEFINE_float("foreground_weight", 10.0, "Loss weight of pixels that differ from the background.")
flags.DEFINE_integer("num_clips", 512, "Training clips (64 frames each).")
flags.DEFINE_float("two_object_prob", 0.0, "Shapes-world two_object_prob of the training clips.")
flags.DEFINE_integer("num_eval_clips", 8, "Held-out clips (256 frames) scored after training.")
flags.DEFINE_integer("seed", 0, "Initialisation and batch order seed.")
FLAGS = flags.FLAGS

TRAIN_SEED0, EVAL_SEED0, CLIP_LEN = 1_000_000, 2_000_000, 64


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


def score_reconstruction(ae: lae.LearnedAutoencoder, world: shapes.ShapesWorldConfig, num_clips: int) -> dict:
    """The evaluator on decode(encode(video)) of held-out clips (an upper bound for any model on these latents)."""
    roundtrip = jax.jit(lambda x: ae.decode(ae.encode(x)))
    videos = []
    for i in range(num_clips):
        clip = shapes.render(EVAL_SEED0 + i, 256, world)
        videos.append((float_to_frames(roundtrip(frames_to_float(clip.frames))), clip.captions))
    result = evaluate_many(videos)
    return {k: result[k] for k in ("present", "colour", "shape", "direction")}


def main(argv):
    del argv
    world = shapes.ShapesWorldConfig(frame_size=FLAGS.frame_size, two_object_prob=FLAGS.two_object_prob)
    palette = ((world.background,) + tuple(shapes.COLOUR_RGB[c] for c in shapes.COLOURS)
               if FLAGS.loss == "palette" else ())
    config = lae.ConvAutoencoderConfig(FLAGS.latent_channels, tuple(int(w) for w in FLAGS.widths),
                                       FLAGS.space_to_depth, palette)
    if FLAGS.frame_size % config.factor:
        raise app.UsageError(f"--frame_size={FLAGS.frame_size} is not divisible by the factor {config.factor} "
                             f"of --space_to_depth and --widths (space_to_depth * 2 ** (len(widths) - 1))")
    t0 = time.time()
    frames = render_frames(FLAGS.num_clips, world)
    logging.info("rendered %d frames in %.1fs", len(frames), time.time() - t0)
    model = lae.new_autoencoder(config, FLAGS.seed)
    schedule = optax.warmup_cosine_decay_schedule(0.0, FLAGS.learning_rate, 100, max(FLAGS.steps, 101))
    optimizer = nnx.Optimizer(model, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule)), wrt=nnx.Param)
    background = jnp.asarray(world.background, jnp.uint8)

    @nnx.jit
    def step(model, optimizer, batch, rng):
        loss, grads = nnx.value_and_grad(ae_loss)(model, batch, rng, FLAGS.latent_noise, FLAGS.foreground_weight,
                                                  background, FLAGS.loss)
        optimizer.update(model, grads)
        return loss

    order = np.random.default_rng(FLAGS.seed)
    key = jax.random.PRNGKey(FLAGS.seed)
    bar = tqdm(range(FLAGS.steps), desc="autoencoder", unit="step")
    for i in bar:
        batch = frames[order.integers(len(frames), size=FLAGS.batch_size)]
        loss = step(model, optimizer, jnp.asarray(batch), jax.random.fold_in(key, i))
        if i % 100 == 0 or i == FLAGS.steps - 1:
            bar.set_postfix(loss=f"{float(loss):.5f}")
    train_seconds = time.time() - t0

    encode = jax.jit(lambda x: model.encode(frames_to_float(x)))
    shift, scale = lae.latent_statistics(encode, [frames[i:i + 512] for i in range(0, min(len(frames), 8192), 512)])
    info = {"steps": FLAGS.steps, "loss": FLAGS.loss, "batch_size": FLAGS.batch_size, "num_clips": FLAGS.num_clips,
            "frame_size": FLAGS.frame_size, "two_object_prob": FLAGS.two_object_prob,
            "final_loss": float(loss), "train_seconds": round(train_seconds, 1)}
    lae.save_autoencoder(FLAGS.output, model, shift, scale, info)
    ae = lae.load_autoencoder(FLAGS.output)
    info["reconstruction"] = score_reconstruction(ae, world, FLAGS.num_eval_clips)
    lae.save_autoencoder(FLAGS.output, model, shift, scale, info)
    print(f"autoencoder -> {FLAGS.output}: factor {config.factor}, {config.latent_channels} channels, "
          f"loss {float(loss):.5f}, {train_seconds:.0f}s")
    print("reconstruction of held-out videos (evaluator): " +
          ", ".join(f"{k} {100 * v:.1f}%" for k, v in info["reconstruction"].items()))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
