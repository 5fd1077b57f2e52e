"""Distill the bundled shapes-world teacher: scheme K=0, c=2, N=8, s=16 with guidance -> s=1 without (Sec. 4.2).

  python -m experiments.distill --config=experiments/configs/distill_shapes.py --workdir=/tmp/distill

Model, data and noise schedule come from the teacher's checkpoint (--teacher, default the bundled one). Another
scheme is a flag away, e.g. --config.distill.chunk=1 or --config.distill.steps_per_chunk=4.
"""
from ml_collections import ConfigDict


def get_config(arg=None):
    del arg
    c = ConfigDict()
    c.distill = ConfigDict(dict(chunk=2, steps_per_chunk=16, reference_frames=0, guidance=3.0))
    c.optim = ConfigDict(dict(learning_rate=1e-4, warmup_steps=20, end_lr_factor=0.1, weight_decay=0.0,
                              b1=0.9, b2=0.99, grad_clip=1.0))
    c.data = ConfigDict(dict(num_clips=256, seed=1))  # merged into the teacher's data config
    c.batch_size = 4
    # the bundled student (teacher experiments/checkpoints/shapes_small): ~35 min on 2 CPU cores (~6.7 s per step:
    # 16 guided teacher calls)
    c.total_steps = 300
    c.ema_decay = 0.99
    c.ema_warmup = True
    c.seed = 1
    c.log_every = 10
    c.checkpoint_every = 50
    c.sample_every = 0
    return c
