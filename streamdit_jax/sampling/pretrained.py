"""A Streamer from a trained checkpoint in one call: the library entry point for applications that stream.

    from streamdit_jax.sampling.pretrained import load_streamer
    cfg, streamer = load_streamer("experiments/checkpoints/shapes_latent")
    for frames in streamer.frames({0: "a red circle moving left", 64: "a blue square moving up"}, 256):
        ...  # uint8 [n, H, W, 3], in stream order

Everything a checkpoint knows is taken from it (model, noise schedule, buffer length, reference frames, the
autoencoder that decodes its latents); what is left unset comes from ``default_sampling``. The experiments' command
lines are thin wrappers over this (they turn its ValueErrors into exit code 2).
"""
from __future__ import annotations

from typing import Optional

from streamdit_jax.partition import Partition
from streamdit_jax.sampling.schedules import check_guidance, check_int
from streamdit_jax.sampling.stream import Streamer
from streamdit_jax.configs import TrainConfig
from streamdit_jax.restore import load_for_inference


def default_sampling(cfg: TrainConfig) -> tuple[int, int, float]:
    """(chunk c, micro steps s, guidance scale) a checkpoint is meant to be sampled with, for choices left unset.

    A distilled student runs its teacher's scheme with ONE unguided step per macro step: that is what it was trained
    to do (Sec. 4.2: step and guidance distillation at once). A model trained with caption dropout knows the null
    prompt and streams with classifier-free guidance 3 (the scale distill_shapes.py distils), c=2, s=4; without
    dropout it has no unconditional branch, so no guidance.
    """
    if cfg.distill is not None:
        return cfg.distill.chunk, 1, 1.0
    chunk = 2 if 2 in cfg.chunk_sizes else min(cfg.chunk_sizes)
    return chunk, 4, (3.0 if cfg.text_dropout > 0 else 1.0)


def check_sampling_args(prefix: str = "", **values) -> None:
    """The checkpoint-independent rules of ``load_streamer``'s sampling arguments, each None (the checkpoint's
    default) or: ``chunk`` / ``steps_per_chunk`` ints >= 1, ``reference_frames`` / ``warmup_frames`` ints >= 0,
    ``guidance`` a finite scale in [1, MAX_GUIDANCE] (``stream.check_guidance``). ValueError names the first bad one
    as ``prefix + name=value`` (the command lines pass prefix="--"). Whether a chunk size or partition suits the
    model is known only from its checkpoint (``load_streamer``)."""
    minimum = {"chunk": 1, "steps_per_chunk": 1, "reference_frames": 0, "warmup_frames": 0}
    for name, value in values.items():
        if name not in minimum and name != "guidance":
            raise TypeError(f"check_sampling_args() got an unexpected argument {name!r}")
        if value is None:
            continue
        if name == "guidance":
            check_guidance(value, prefix + name)
        else:
            check_int(value, prefix + name, minimum[name])


def load_streamer(checkpoint: str, *, chunk: Optional[int] = None, steps_per_chunk: Optional[int] = None,
                  reference_frames: Optional[int] = None, guidance: Optional[float] = None,
                  warmup_frames: Optional[int] = None, pause_gc: bool = False,
                  queue_size: int = 4, text_encoder: Optional[str] = None) -> tuple[TrainConfig, Streamer]:
    """(the checkpoint's TrainConfig, a Streamer over its EMA parameters decoding to uint8 frames).

    ``checkpoint``: a training workdir or an export (experiments.export). ``chunk`` must be one the model was trained
    with; ``chunk`` / ``steps_per_chunk`` / ``guidance`` default to ``default_sampling``, ``reference_frames`` to the
    trained K. ``warmup_frames`` None warms up one buffer (B - K frames) after the T2V start, what the command lines
    do and what the bundled model's scores assume; 0 is the paper's start (Streamer's own default). Raises
    ValueError (CheckpointError for the checkpoint itself) naming the bad value; the arguments' own rules
    (``check_sampling_args``) are checked before the checkpoint is read. ``text_encoder``: a local directory of the
    model's frozen text encoder, required when the checkpoint does not name one on this machine (an export of a
    model on a T5-family encoder or on a MiniLM other than the installed one: its config names no directory) and
    checked against the export's record; the encoder is looked for before the weights are read.
    """
    check_sampling_args(chunk=chunk, steps_per_chunk=steps_per_chunk, reference_frames=reference_frames,
                        guidance=guidance, warmup_frames=warmup_frames)
    check_int(queue_size, "queue_size", 1, meaning="chunks each of the Streamer's queues holds")
    cfg, graphdef, params = load_for_inference(checkpoint, text_encoder=text_encoder, require_text_encoder=True)
    default_chunk, default_steps, default_guidance = default_sampling(cfg)
    chunk = default_chunk if chunk is None else chunk
    steps_per_chunk = default_steps if steps_per_chunk is None else steps_per_chunk
    guidance = default_guidance if guidance is None else guidance
    if chunk not in cfg.chunk_sizes:
        raise ValueError(f"chunk={chunk} is not a chunk size this model was trained with: {tuple(cfg.chunk_sizes)}")
    K = cfg.reference_frames if reference_frames is None else reference_frames
    try:
        partition = Partition.from_buffer(cfg.buffer_len, chunk, steps_per_chunk, K)
    except ValueError as e:
        raise ValueError(f"invalid partition: {e}") from e
    warmup_frames = partition.B - partition.K if warmup_frames is None else warmup_frames
    autoencoder = cfg.make_autoencoder()
    latent = autoencoder.latent_shape((1, *cfg.data.frame_hw, 3))[1:]
    streamer = Streamer(graphdef, params, partition, latent, autoencoder,
                        schedule=cfg.schedule, guidance_scale=guidance, pause_gc=pause_gc,
                        warmup_frames=warmup_frames, queue_size=queue_size)
    return cfg, streamer
