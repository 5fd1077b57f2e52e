"""Distill the bundled shapes-world teacher: scheme K=0, c=2, N=8, s=16 with guidance -> s=1 without (Sec. 4.2).

  python -m experiments.distill --config=experiments/configs/distill_shapes.py --workdir=/tmp/distill

Model, data and noise schedule come from the teacher's checkpoint (--teacher, default the bundled one). Another
scheme is a flag away, e.g. --config.distill.chunk=1 or --config.distill.steps_per_chunk=4.
"""
from experiments.config_dicts import distill_config_dict


def get_config(arg=None):
    del arg
    # only what a distillation chooses (the rest is the teacher's; see experiments/config_dicts.py), at
    # DistillConfig's and TrainConfig's defaults: scheme K=0, c=2, s=16, guidance 3; set what differs
    c = distill_config_dict()
    c.optim.learning_rate = 1e-4
    c.optim.warmup_steps = 20
    c.optim.weight_decay = 0.0
    c.data.num_clips = 256  # merged into the teacher's data config
    c.data.seed = 1
    c.batch_size = 4
    # the bundled student (teacher experiments/checkpoints/shapes_small): ~35 min on 2 CPU cores (~6.7 s per step:
    # 16 guided teacher calls)
    c.total_steps = 300
    c.ema_decay = 0.99
    c.seed = 1
    c.checkpoint_every = 50
    c.sample_every = 0
    return c
