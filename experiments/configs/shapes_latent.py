"""StreamDiT in the latent space of a learned autoencoder (the paper's set-up, Sec. 5) on the 32x32 shapes world.

Frames 32x32x3 -> learned conv autoencoder (8x spatial, 8 channels like the paper's VAE, palette decoder;
experiments/checkpoints/shapes_ae, trained by experiments.train_autoencoder) -> latents 4x4x8 -> 1x2x2 patches of 32
values -> tokens [16, 2, 2] (64 per buffer, full attention). A quarter of the patch-autoencoder recipe's tokens, each a
learned code instead of 192 raw pixels, so twice the batch still costs half the time per step: see WORKSPACE.md
"Issue 4 recipe search".

  python -m experiments.train --config=experiments/configs/shapes_latent.py --workdir=/tmp/latent
"""
import os

from experiments.configs import shapes_small

AUTOENCODER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "shapes_ae")


def get_config(arg=None):
    # shapes_small's model and optimiser; what differs is the latent space and what follows from its size
    c = shapes_small.get_config(arg)
    c.model.latent_channels = 8
    c.autoencoder_factor = 0
    c.autoencoder = AUTOENCODER
    c.schedule.param = 1.5
    c.batch_size = 16
    c.total_steps = 4500
    return c
