"""Fine-tune shapes_latent on a shapes world where motion changes often: how the bundled model learned to obey the
caption's direction (issue 4; WORKSPACE.md "Issue 4 recipe search", session 5).

Why: a denoiser that sees an object's noisy trajectory over 16 frames can read its direction off the frames, so
while the caption always agrees with them the direction word lowers the loss almost nowhere and is never learned
(the step-3,700 shapes_latent model drew the same motion for all four direction words, given the same noise).
Windows in which the motion turns -- the older, cleaner frames go one way, the newer, noisier ones the caption's
new way -- are the examples where only the caption tells the answer. The base world switches one attribute every
48 frames on average, a third of them motion; this one every 16 frames, half of them motion: ~6x the turns.

The bundle used it twice (TRAINING.md in the checkpoint): stage 3 from the step-3,700 base model, stopped at
1,247 steps, then stage 4, an anneal of that export over what was left of the schedule:

  python -m experiments.train --config=experiments/configs/shapes_latent_turns.py --workdir=/tmp/turns \
      --init_from=/tmp/latent_export --stop_after=1247
  python -m experiments.export --workdir=/tmp/turns --output=/tmp/turns_export
  python -m experiments.train --config=experiments/configs/shapes_latent_turns.py --workdir=/tmp/anneal \
      --init_from=/tmp/turns_export --config.optim.learning_rate=2e-4 --config.optim.warmup_steps=20 \
      --config.total_steps=650
"""
from experiments.configs import shapes_latent


def get_config(arg=None):
    c = shapes_latent.get_config(arg)
    c.data.mean_switch_interval = 16.0
    c.data.switch_weights = (1.0, 1.0, 2.0)
    c.optim.learning_rate = 5e-4
    c.optim.warmup_steps = 100
    c.total_steps = 2000
    return c
