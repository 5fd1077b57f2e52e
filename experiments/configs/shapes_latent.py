"""StreamDiT in the latent space of a learned autoencoder (the paper's set-up, Sec. 5) on the 32x32 shapes world.

Frames 32x32x3 -> learned conv autoencoder (8x spatial, 8 channels like the paper's VAE, palette decoder;
experiments/checkpoints/shapes_ae, trained by experiments.train_autoencoder) -> latents 4x4x8 -> 1x2x2 patches of 32
values -> tokens [16, 2, 2] (64 per buffer, full attention). A quarter of the patch-autoencoder recipe's tokens, each a
learned code instead of 192 raw pixels, so twice the batch still costs half the time per step: see WORKSPACE.md
"Issue 4 recipe search".

  python -m experiments.train --config=experiments/configs/shapes_latent.py --workdir=/tmp/latent
"""
import os

from experiments.configs import shapes_base

AUTOENCODER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "shapes_ae")


def get_config(arg=None):
    c = shapes_base.get_config(arg)
    c.model = type(c.model)(dict(name="small", latent_channels=8, width=256, depth=4, num_heads=4,
                                 window=(0, 0, 0), time_freq_dim=64, pooled_text=True,
                                 text=dict(width=128, depth=2, num_heads=2, max_len=48)))
    c.autoencoder_factor = 0
    c.autoencoder = AUTOENCODER
    c.schedule = type(c.schedule)(dict(kind="shift", param=1.5))
    c.data.num_clips = 1024
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 200
    c.batch_size = 16
    c.total_steps = 4500
    c.ema_decay = 0.998
    c.ema_warmup = True
    c.log_every = 50
    c.checkpoint_every = 250
    c.sample_every = 1000
    return c
