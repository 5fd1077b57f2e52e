"""Shared set-up of the streaming entry points (stream, evaluate): checkpoint -> validated partition -> Streamer."""
from __future__ import annotations

import os
import sys

from streamdit_jax.data.pipeline import float_to_frames
from streamdit_jax.partition import Partition
from streamdit_jax.sampling.stream import Streamer, normalize_schedule
from streamdit_jax.training.restore import CheckpointError, load_for_inference

_CHECKPOINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")
# the default model of stream / evaluate / demo / distill: the DiT on the learned autoencoder's latents (issue 4)
BUNDLED = os.path.join(_CHECKPOINTS, "shapes_latent")
# the patch-autoencoder model: the teacher of RESULTS.md's tables and of the bundled distilled student (issue 5)
PATCH_TEACHER = os.path.join(_CHECKPOINTS, "shapes_small")


def quiet_library_logs() -> None:
    """Orbax and JAX log every step of a checkpoint read at INFO; the streaming tools print their own progress, so
    they show library logs from WARNING up unless the user asked for a level (``--verbosity=0`` brings INFO back)."""
    from absl import flags, logging
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def define_stream_flags() -> None:
    """The checkpoint, partition and guidance flags shared by experiments.stream and experiments.evaluate."""
    from absl import flags
    flags.DEFINE_string("checkpoint", BUNDLED, "Training workdir holding checkpoints/ (default: the bundled one).")
    flags.DEFINE_integer("chunk", None, "Chunk size c (one the model was trained with). Default: the checkpoint's "
                         "(default_sampling: a distilled student's scheme, else 2).")
    flags.DEFINE_integer("steps_per_chunk", None, "Micro steps s per macro step. Default: 1 for a distilled "
                         "student, else 4.")
    flags.DEFINE_integer("reference_frames", None, "K reference frames (default: as trained).")
    flags.DEFINE_integer("warmup_frames", None, "Frames generated after the T2V start and discarded (not for "
                         "--input_video). Default: one buffer (B - K), so every emitted frame was denoised from "
                         "fresh noise by the stream; 0 emits the T2V start's frames.", lower_bound=0)
    flags.DEFINE_float("guidance", None, "Classifier-free guidance scale (<= 1: off). Default: 1 for a distilled "
                       "student (it learned the guided teacher), 3 for a model trained with caption dropout, else 1.")


def fail(message: str) -> None:
    """Bad user input: message on stderr, exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_prompts(text: str) -> dict[int, str]:
    """--prompts 'frame:prompt;frame:prompt' -> {frame: prompt}, or exit 2 naming the bad entry."""
    if not text.strip():
        fail("--prompts is empty; give e.g. --prompts='0:a red circle moving left'")
    schedule = {}
    for part in text.split(";"):
        frame, sep, prompt = part.partition(":")
        if not sep or not frame.strip().isdigit() or not prompt.strip():
            fail(f"--prompts entry {part!r} is malformed; expected 'frame:prompt' with an integer frame")
        schedule[int(frame)] = prompt.strip()
    try:
        normalize_schedule(schedule)
    except ValueError as e:
        fail(f"--prompts: {e}")
    return schedule


def default_sampling(cfg) -> tuple[int, int, float]:
    """(chunk c, micro steps s, guidance scale) a checkpoint is meant to be sampled with, for flags left unset.

    A distilled student runs its teacher's scheme with ONE unguided step per macro step: that is what it was trained
    to do (Sec. 4.2: step and guidance distillation at once). A model trained with caption dropout knows the null
    prompt and streams with classifier-free guidance 3 (the scale distill_shapes.py distils), c=2, s=4; without
    dropout it has no unconditional branch, so no guidance.
    """
    if cfg.distill is not None:
        return cfg.distill.chunk, 1, 1.0
    chunk = 2 if 2 in cfg.chunk_sizes else min(cfg.chunk_sizes)
    return chunk, 4, (3.0 if cfg.text_dropout > 0 else 1.0)


def build_streamer(checkpoint: str, chunk=None, steps_per_chunk=None, reference_frames=None, guidance=None,
                   pause_gc: bool = True, warmup_frames=None, queue_size: int = 4):
    """(TrainConfig, Streamer) or exit 2 naming the bad checkpoint / chunk size / partition; None takes the
    checkpoint's ``default_sampling`` (and a warm-up of one buffer, B - K frames). The command-line tools are
    applications, so they choose the real-time GC policy (``pause_gc``, Streamer's GcPause) and the warm-up that a
    library must leave to its caller. ``queue_size``: chunks each of the Streamer's two queues holds (smaller: a live
    prompt switch reaches the output sooner; larger: more slack against decode hiccups)."""
    try:
        cfg, graphdef, params = load_for_inference(checkpoint)
    except CheckpointError as e:
        fail(str(e))
    defaults = default_sampling(cfg)
    chunk = defaults[0] if chunk is None else chunk
    steps_per_chunk = defaults[1] if steps_per_chunk is None else steps_per_chunk
    guidance = defaults[2] if guidance is None else guidance
    if chunk not in cfg.chunk_sizes:
        fail(f"--chunk={chunk} is not a chunk size this model was trained with: {tuple(cfg.chunk_sizes)}")
    K = cfg.reference_frames if reference_frames is None else reference_frames
    try:
        partition = Partition.from_buffer(cfg.buffer_len, chunk, steps_per_chunk, K)
    except ValueError as e:
        fail(f"invalid partition: {e}")
    warmup_frames = partition.B - partition.K if warmup_frames is None else warmup_frames
    if warmup_frames < 0:
        fail(f"--warmup_frames={warmup_frames} must be >= 0")
    print(f"sampling {os.path.basename(os.path.normpath(checkpoint))}: c={chunk} s={steps_per_chunk} "
          f"guidance={guidance:g} warm-up {warmup_frames} frames", file=sys.stderr)
    ae = cfg.make_autoencoder()
    latent = ae.latent_shape((1, cfg.data.frame_size, cfg.data.frame_size, 3))[1:]
    streamer = Streamer(graphdef, params, partition, latent, lambda lat: float_to_frames(ae.decode(lat)),
                        schedule=cfg.schedule, guidance_scale=guidance, pause_gc=pause_gc,
                        warmup_frames=warmup_frames, queue_size=queue_size)
    return cfg, streamer
