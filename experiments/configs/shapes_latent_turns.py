"""shapes_latent on a shapes world where motion changes often: how the bundled model learns to obey the caption's
direction (issue 4; WORKSPACE.md "Issue 4 recipe search", sessions 5-7).

Why: a denoiser that sees an object's noisy trajectory over 16 frames can read its direction off the frames, so
while the caption always agrees with them the direction word lowers the loss almost nowhere and is never learned
(the shapes_latent model trained on the base world drew the same motion for all four direction words, given the
same noise). Windows in which the motion turns -- the older, cleaner frames go one way, the newer, noisier ones the
caption's new way -- are the examples where only the caption tells the answer. The base world switches one attribute
every 48 frames on average, a third of them motion; this one every 16 frames, half of them motion: ~6x the turns.

Trained from scratch with shapes_latent's optimiser and 4,500-step schedule (stage 2 of the bundled recipe: 87 min
wall on 2 CPU cores, ~10 of them beside other work):

  python -m experiments.train --config=experiments/configs/shapes_latent_turns.py --workdir=/tmp/turns
"""
from experiments.configs import shapes_latent


def get_config(arg=None):
    c = shapes_latent.get_config(arg)
    c.data.mean_switch_interval = 16.0
    c.data.switch_weights = (1.0, 1.0, 2.0)
    return c
