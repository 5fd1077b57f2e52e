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

from absl import app, flags
from experiments.flag_parsing import parse_flags
from experiments.streaming import fail

from streamdit_jax import shapes_world as shapes
from streamdit_jax.models import learned_autoencoder as lae
from streamdit_jax.training import autoencoder_training

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
flags.DEFINE_enum("loss", "palette", list(autoencoder_training.LOSSES), "palette: classify each pixel into the world's "
                  "colours (cross-entropy; crisp edges); l1 / mse: regress RGB (blurs the edge pixels that tell "
                  "circles from squares).")
flags.DEFINE_float("foreground_weight", 10.0, "Loss weight of pixels that differ from the background.")
flags.DEFINE_integer("num_clips", 512, "Training clips (64 frames each).")
flags.DEFINE_float("two_object_prob", 0.0, "Shapes-world two_object_prob of the training clips.")
flags.DEFINE_integer("num_eval_clips", 8, "Held-out clips (256 frames) scored after training.")
flags.DEFINE_integer("seed", 0, "Initialisation and batch order seed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        autoencoder_training.check_training_args("--", steps=FLAGS.steps, batch_size=FLAGS.batch_size,
                                                 num_clips=FLAGS.num_clips)
    except ValueError as e:
        fail(str(e))
    world = shapes.ShapesWorldConfig(frame_size=FLAGS.frame_size, two_object_prob=FLAGS.two_object_prob)
    config = autoencoder_training.autoencoder_config(world, FLAGS.latent_channels, tuple(int(w) for w in FLAGS.widths),
                                                     FLAGS.space_to_depth, FLAGS.loss)
    if FLAGS.frame_size % config.factor:
        raise app.UsageError(f"--frame_size={FLAGS.frame_size} is not divisible by the factor {config.factor} "
                             f"of --space_to_depth and --widths (space_to_depth * 2 ** (len(widths) - 1))")
    model, shift, scale, info = autoencoder_training.train_autoencoder(
        config, world, steps=FLAGS.steps, batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        latent_noise=FLAGS.latent_noise, loss=FLAGS.loss, foreground_weight=FLAGS.foreground_weight,
        num_clips=FLAGS.num_clips, seed=FLAGS.seed)
    lae.save_autoencoder(FLAGS.output, model, shift, scale, info)
    # scored as saved and loaded back: what every later user of the directory gets
    info["reconstruction"] = autoencoder_training.score_reconstruction(lae.load_autoencoder(FLAGS.output), world,
                                                                       FLAGS.num_eval_clips)
    lae.save_autoencoder(FLAGS.output, model, shift, scale, info)
    print(f"autoencoder -> {FLAGS.output}: factor {config.factor}, {config.latent_channels} channels, "
          f"loss {info['final_loss']:.5f}, {info['train_seconds']:.0f}s")
    print("reconstruction of held-out videos (evaluator): " +
          ", ".join(f"{k} {100 * v:.1f}%" for k, v in info["reconstruction"].items()))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
