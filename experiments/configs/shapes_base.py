"""The `small` StreamDiT (width 256, depth 8, 1024 tokens) on the 32x32 shapes world: the base recipe (16-frame buffer, chunk sizes {1,2,4,8,16}).

  python -m experiments.train --config=experiments/configs/shapes_base.py --workdir=/tmp/base
"""
from experiments.config_dicts import config_dict, model_dict


def get_config(arg=None):
    del arg
    c = config_dict()  # TrainConfig's defaults: 32x32 frames, patch autoencoder factor 2, 16-frame buffer, batch 8
    # frames 32x32x3 -> latents 16x16x12 -> tokens [16, 8, 8]
    c.model = model_dict("small", latent_channels=12, window=(8, 8, 8))
    c.optim.learning_rate = 5e-4
    c.optim.warmup_steps = 200
    c.total_steps = 3000
    return c
