r"""StreamDiT's recipe (buffered flow matching, mixed chunk sizes; STREAMDIT.md Sec. 3-4) fine-tuning Wan2.1 from its
open weights, on Wan VAE latents and umT5 embeddings computed once beside the clips (the step runs neither).

  ARG = 1.3b (default) | 14b | tiny (the CI-scale variant: tests/test_real_video.py runs every command below with it)
  FLAGS="--config=experiments/configs/wan_streamdit.py:1.3b --config.data.video_dir=VIDEOS \
         --config.autoencoder=Wan2.1-T2V-1.3B-Diffusers/vae --config.model.text.path=Wan2.1-T2V-1.3B-Diffusers/text_encoder"
  python -m experiments.import_weights --source=Wan2.1-T2V-1.3B-Diffusers/transformer --output=ckpt/wan_1_3b
  python -m experiments.precompute_latents $FLAGS --workdir=RUN
  python -m experiments.precompute_text $FLAGS --workdir=RUN
  python -m experiments.train $FLAGS --workdir=RUN --init_from=ckpt/wan_1_3b

The model must be the imported checkpoint's (``--init_from`` refuses another architecture, naming the fields); its
compute settings (dtype, remat, attention_impl) and the umT5 directory's location are this config's to choose.
umT5's tokenizer is read from model.text.path, or from the pipeline's tokenizer/ beside it (the Diffusers layout).

Why these settings:
* buffer of 16 latent frames (64 video frames through the VAE's 4x temporal compression), chunk sizes 1..16: the
  paper's B = 16 and its mixed partitions (Sec. 4.1); 16 of the 21 latent frames Wan2.1 was trained on (81 frames),
  so the buffer never reaches a RoPE position the backbone has not seen (positions are relative to the buffer).
* clips of 81 frames: Wan2.1's training length; windows of 16 latent frames are cut from their 21.
* schedule "shift" 5.0: Wan2.1's T2V flow shift (sample_shift 5.0 at 480p); ``NoiseSchedule``'s shift is the same
  map in our tau convention (tau' = tau / (tau + s (1 - tau)) is sigma' = s sigma / (1 + (s - 1) sigma)).
* learning rate 1e-5 after 200 warm-up steps, no weight decay: a fine-tune of 1.3B / 14B pretrained weights (a
  from-scratch rate would undo them); EMA 0.999 with warm-up.
* 480 x 832 frames (60 x 104 latents, 30 x 52 tokens per latent frame): Wan2.1-T2V's 480p size.
* mesh: 1.3B shards parameters over every device (fsdp); 14B adds context parallelism over the buffer's frames
  (parallel.LOGICAL_RULES' "frames_act"), so 4 devices share one buffer's activations.
"""
from experiments.config_dicts import config_dict, config_variant, model_dict

VARIANTS = ("1.3b", "14b", "tiny")


def get_config(arg=None):
    variant = config_variant(arg, VARIANTS, "wan_streamdit")
    c = config_dict()
    c.data.name = "video_folder"
    c.data.latent_source = "precomputed"  # a causal VAE must see each clip from its first frame (latent_clips)
    c.data.text_source = "precomputed"  # the frozen umT5-XXL (5.7B) never runs in the training step
    c.autoencoder_factor = 0  # config.autoencoder: the Wan VAE directory
    c.schedule.kind, c.schedule.param = "shift", 5.0
    c.optim.learning_rate, c.optim.warmup_steps, c.optim.weight_decay = 1e-5, 200, 0.0
    c.ema_decay = 0.999
    c.text_dropout = 0.1  # classifier-free guidance at sampling
    c.mesh.data, c.mesh.fsdp = 1, -1
    if variant == "tiny":
        # Wan's layout at a few thousand parameters: 32 x 48 frames -> 4 x 6 latents of 4 channels (a tiny Wan VAE),
        # a 32-wide umT5; clips of 17 frames = 5 latent frames; 20 steps on 2 CPU cores in seconds
        c.model = model_dict("wan_tiny", dtype="float32", attend_text_padding=True,
                             text=dict(kind="t5", width=32, max_len=512))
        c.data.frame_size, c.data.frame_width, c.data.clip_len = 32, 48, 17
        c.buffer_len, c.chunk_sizes = 4, (1, 2, 4)
        c.optim.learning_rate, c.optim.warmup_steps = 1e-3, 2
        c.batch_size, c.total_steps = 2, 20
        c.log_every, c.checkpoint_every, c.sample_every = 5, 20, 0
        c.ema_decay = 0.9
        return c
    c.model = model_dict("wan_1_3b" if variant == "1.3b" else "wan_14b")
    c.data.frame_size, c.data.frame_width, c.data.clip_len = 480, 832, 81
    c.buffer_len, c.chunk_sizes = 16, (1, 2, 4, 8, 16)
    c.batch_size = 64 if variant == "1.3b" else 256
    c.total_steps = 10_000
    c.log_every, c.checkpoint_every, c.keep_checkpoints = 20, 500, 3
    c.sample_every = 0  # a preview runs the whole sampler: use experiments.stream on a checkpoint instead
    if variant == "14b":
        c.mesh.context = 4
    return c
