"""Paper Table 3 on the shapes world: fine-tune the patch-autoencoder model with one chunk-size set, equal steps each.

  python -m experiments.train --config=experiments/configs/chunk_ablation.py:1 --workdir=/tmp/table3_c1
  python -m experiments.train --config=experiments/configs/chunk_ablation.py:1,2,4,8,16 --workdir=/tmp/table3_c1-16

The argument is the chunk-size set (sizes must divide the 16-frame buffer). Like the paper, which trains StreamDiT
from one pretrained text-to-video model with each mixture, every run starts from the same weights (the EMA
parameters of experiments/checkpoints/shapes_small, the patch-autoencoder model; --config.init_from to change) and
differs only in the chunk sizes it trains on; all are then evaluated at c=1 (experiments.paper_tables --table=3).
The shapes_small recipe otherwise, with a short fine-tuning schedule (fresh AdamW, 20 warm-up steps, cosine to 10%).
"""
from experiments.configs import shapes_small
from experiments.streaming import PATCH_TEACHER


def get_config(arg=None):
    c = shapes_small.get_config()
    sizes = tuple(int(v) for v in (arg or "1,2,4,8,16").split(","))
    c.chunk_sizes = sizes
    c.init_from = PATCH_TEACHER
    c.optim.learning_rate = 3e-4
    c.optim.warmup_steps = 20
    c.total_steps = 300
    c.ema_decay = 0.99
    c.seed = 3  # a fresh data order for every set alike
    c.checkpoint_every = 100
    c.sample_every = 0
    return c
