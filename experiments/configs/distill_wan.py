r"""Distill a StreamDiT-on-Wan2.1 teacher (experiments/configs/wan_streamdit.py) into a one-step-per-chunk student:
the paper's scheme K=0, c=2, N=8, s=16 with guidance -> s=1 without (Sec. 4.2; T = 128 -> 8 steps per buffer).

  python -m experiments.distill --config=experiments/configs/distill_wan.py:1.3b --teacher=RUN --workdir=STUDENT
  python -m experiments.stream --checkpoint=STUDENT --steps_per_chunk=1 --prompts="0:A red fox runs through snow."

Model, data (the precomputed Wan VAE latents and umT5 embeddings), buffer and noise schedule are the teacher's (read
from its checkpoint); this file holds only what a distillation chooses. ARG = 1.3b (default) | 14b | tiny (the CI
variant: tests/test_real_video.py distils the tiny fine-tune for 2 steps with it).

Why: guidance 5.0 is Wan2.1's T2V guidance scale (sample_guide_scale 5.0); learning rate 1e-6 (with EMA 0.99) keeps
the student near the pretrained teacher it starts from; the mesh repeats the teacher's recipe (fsdp over every
device; 14B: plus 4-way context parallelism).
"""
from experiments.config_dicts import config_variant, distill_config_dict
from streamdit_jax.configs import DistillConfig

VARIANTS = ("1.3b", "14b", "tiny")


def get_config(arg=None):
    variant = config_variant(arg, VARIANTS, "distill_wan")
    c = distill_config_dict(DistillConfig(chunk=2, steps_per_chunk=16, guidance=5.0))
    c.mesh.data, c.mesh.fsdp = 1, -1
    c.optim.weight_decay = 0.0
    c.ema_decay = 0.99
    c.sample_every = 0
    if variant == "tiny":
        c.distill.steps_per_chunk = 2  # 2 guided teacher micro steps per student step: seconds on 2 CPU cores
        c.optim.learning_rate, c.optim.warmup_steps = 1e-3, 1
        c.batch_size, c.total_steps, c.checkpoint_every, c.log_every = 2, 2, 2, 1
        return c
    c.optim.learning_rate, c.optim.warmup_steps = 1e-6, 100
    c.batch_size = 64 if variant == "1.3b" else 256
    c.total_steps, c.checkpoint_every, c.log_every = 2_000, 250, 20
    if variant == "14b":
        c.mesh.context = 4
    return c
