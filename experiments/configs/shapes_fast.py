"""A CPU-sized StreamDiT for the 32x32 shapes world (candidate for the bundled checkpoint, issue 4).

Frames 32x32x3 -> patch autoencoder factor 4 -> latents 8x8x48 -> 1x2x2 patches -> tokens [16, 4, 4] (256 per
buffer, full attention). About 40x cheaper per example than `small` (1024 tokens, width 256, depth 8).

  python -m experiments.train --config=experiments/configs/shapes_fast.py --workdir=/tmp/fast
"""
from experiments.configs import shapes_small


def get_config(arg=None):
    c = shapes_small.get_config(arg)
    c.model = type(c.model)(dict(name="small", latent_channels=48, width=128, depth=4, num_heads=4,
                                 window=(0, 0, 0), time_freq_dim=64,
                                 text=dict(width=96, depth=2, num_heads=2, max_len=48)))
    c.autoencoder_factor = 4
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 200
    c.batch_size = 8
    c.total_steps = 20000
    c.ema_decay = 0.999
    c.log_every = 50
    c.checkpoint_every = 500
    c.sample_every = 2000
    return c
