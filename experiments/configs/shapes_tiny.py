"""Tiny StreamDiT on a tiny shapes world: the CI / smoke-test configuration (16x16 frames, 8-frame buffer).

  python -m experiments.train --config=experiments/configs/shapes_tiny.py --workdir=/tmp/tiny --config.total_steps=30
"""
from ml_collections import ConfigDict


def get_config(arg=None):
    del arg
    c = ConfigDict()
    # frames 16x16x3 -> patch autoencoder (factor 2) -> latents 8x8x12 -> tokens [8, 4, 4]
    c.model = ConfigDict(dict(name="tiny", latent_channels=12, window=(4, 2, 2)))
    c.optim = ConfigDict(dict(learning_rate=1e-3, warmup_steps=10, end_lr_factor=0.1, weight_decay=0.01,
                              b1=0.9, b2=0.99, grad_clip=1.0))
    c.data = ConfigDict(dict(name="shapes_world", data_dir="", video_dir="", frame_size=16, clip_len=24,
                             num_clips=64, num_val_clips=4, two_object_prob=0.0,
                             # how often, and which of (shape, colour, motion), an attribute switches in a clip
                             mean_switch_interval=48.0, switch_weights=(1.0, 1.0, 1.0), seed=0))
    c.mesh = ConfigDict(dict(data=-1, fsdp=1, context=1, tensor=1))
    c.buffer_len = 8
    c.reference_frames = 0
    c.chunk_sizes = (1, 2, 4, 8)
    c.chunk_probs = None
    c.t2v_steady_windows = False  # True: plain T2V examples only from windows without a caption switch
    c.schedule = ConfigDict(dict(kind="linear", param=1.0))
    c.text_dropout = 0.1
    c.ema_decay = 0.99
    c.ema_warmup = True
    c.autoencoder_factor = 2
    c.autoencoder = ""  # a learned autoencoder directory (then autoencoder_factor = 0)
    c.batch_size = 8
    c.total_steps = 100
    c.seed = 0
    c.init_from = ""  # fine-tune: a checkpoint whose EMA parameters start the run
    c.log_every = 5
    c.checkpoint_every = 25
    c.keep_checkpoints = 3
    c.async_checkpoint = True
    c.sample_every = 50
    c.sample_steps = 8
    return c
