"""Tiny StreamDiT on a tiny shapes world: the CI / smoke-test configuration (16x16 frames, 8-frame buffer).

  python -m experiments.train --config=experiments/configs/shapes_tiny.py --workdir=/tmp/tiny --config.total_steps=30
"""
from experiments.config_dicts import config_dict, model_dict


def get_config(arg=None):
    del arg
    c = config_dict()  # every TrainConfig field at its default; set what differs
    # frames 16x16x3 -> patch autoencoder (factor 2, the default) -> latents 8x8x12 -> tokens [8, 4, 4]
    c.model = model_dict("tiny", latent_channels=12, window=(4, 2, 2))
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 10
    c.data.frame_size = 16
    c.data.clip_len = 24
    c.data.num_clips = 64
    c.data.num_val_clips = 4
    c.buffer_len = 8
    c.chunk_sizes = (1, 2, 4, 8)
    c.ema_decay = 0.99
    c.total_steps = 100
    c.log_every = 5
    c.checkpoint_every = 25
    c.sample_every = 50
    c.sample_steps = 8
    return c
