"""The bundled CPU model: a StreamDiT trained on the 32x32 shapes world in <= 2 hours on 2 CPU cores (issue 4).

Frames 32x32x3 -> patch autoencoder (factor 4) -> latents 8x8x48 -> 1x2x2 patches of 192 values -> tokens [16, 4, 4]
(256 per buffer, full attention). Width 256 >= 192 keeps the velocity head full-rank (see ModelConfig). About 10x
cheaper per example than shapes_base (1024 tokens, width 256, depth 8); WORKSPACE.md "Issue 4 recipe search" says
what was tried and why this one.

  python -m experiments.train --config=experiments/configs/shapes_small.py --workdir=/tmp/small
"""
from experiments.config_dicts import model_dict
from experiments.configs import shapes_base


def get_config(arg=None):
    c = shapes_base.get_config(arg)
    c.model = model_dict("small", latent_channels=48, width=256, depth=4, num_heads=4, window=(0, 0, 0),
                         time_freq_dim=64, pooled_text=True, text=dict(width=128, depth=2, num_heads=2, max_len=48))
    c.autoencoder_factor = 4
    # SD3-style shift: half of the training and sampling steps at tau < 0.25, where the object's colour, shape and
    # position are decided (at higher tau they are visible in X_tau itself and the prompt barely lowers the loss).
    c.schedule.kind = "shift"
    c.schedule.param = 3.0
    c.data.num_clips = 1024
    c.optim.learning_rate = 1e-3
    c.total_steps = 2100
    c.ema_decay = 0.998
    c.log_every = 50
    c.checkpoint_every = 250
    c.sample_every = 1000
    return c
