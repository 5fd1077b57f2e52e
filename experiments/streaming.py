"""Shared set-up of the streaming entry points (stream, evaluate): checkpoint -> validated partition -> Streamer."""
from __future__ import annotations

import os
import sys

from streamdit_jax.sampling.pretrained import load_streamer
from streamdit_jax.sampling.stream import normalize_schedule

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


def build_streamer(checkpoint: str, chunk=None, steps_per_chunk=None, reference_frames=None, guidance=None,
                   pause_gc: bool = True, warmup_frames=None, queue_size: int = 4):
    """``sampling.pretrained.load_streamer`` for the command lines: (TrainConfig, Streamer), or exit 2 naming the bad
    checkpoint / chunk size / partition. The command-line tools are applications, so they choose the real-time GC
    policy (``pause_gc``, Streamer's GcPause) that a library must leave to its caller. ``queue_size``: chunks each of
    the Streamer's two queues holds (smaller: a live prompt switch reaches the output sooner)."""
    try:
        cfg, streamer = load_streamer(checkpoint, chunk=chunk, steps_per_chunk=steps_per_chunk,
                                      reference_frames=reference_frames, guidance=guidance,
                                      warmup_frames=warmup_frames, pause_gc=pause_gc, queue_size=queue_size)
    except ValueError as e:  # CheckpointError included
        fail(str(e))
    p = streamer.partition
    print(f"sampling {os.path.basename(os.path.normpath(checkpoint))}: c={p.c} s={p.s} "
          f"guidance={streamer.guidance or 1.0:g} warm-up {streamer.warmup_chunks * p.c} frames", file=sys.stderr)
    return cfg, streamer
