"""The `small` StreamDiT (width 256, depth 8, 1024 tokens) on the 32x32 shapes world: the base recipe (16-frame buffer, chunk sizes {1,2,4,8,16}).

  python -m experiments.train --config=experiments/configs/shapes_base.py --workdir=/tmp/base
"""
from experiments.configs import shapes_tiny


def get_config(arg=None):
    c = shapes_tiny.get_config(arg)
    # frames 32x32x3 -> latents 16x16x12 -> tokens [16, 8, 8]
    c.model = type(c.model)(dict(name="small", latent_channels=12, window=(8, 8, 8)))
    c.optim.learning_rate = 5e-4
    c.optim.warmup_steps = 200
    c.data.frame_size = 32
    c.data.clip_len = 64
    c.data.num_clips = 512
    c.data.num_val_clips = 16
    c.buffer_len = 16
    c.chunk_sizes = (1, 2, 4, 8, 16)
    c.ema_decay = 0.999
    c.batch_size = 8
    c.total_steps = 3000
    c.log_every = 10
    c.checkpoint_every = 200
    c.sample_every = 500
    c.sample_steps = 16
    return c
