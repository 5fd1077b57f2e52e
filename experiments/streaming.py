"""Shared set-up of the streaming entry points (stream, evaluate): checkpoint -> validated partition -> Streamer."""
from __future__ import annotations

import os
import sys

from streamdit_jax.data.pipeline import float_to_frames
from streamdit_jax.models.autoencoder import PatchAutoencoder
from streamdit_jax.partition import Partition
from streamdit_jax.sampling.stream import Streamer, normalize_schedule
from streamdit_jax.training.restore import CheckpointError, load_for_inference

BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints", "shapes_small")


def define_stream_flags() -> None:
    """The checkpoint, partition and guidance flags shared by experiments.stream and experiments.evaluate."""
    from absl import flags
    flags.DEFINE_string("checkpoint", BUNDLED, "Training workdir holding checkpoints/ (default: the bundled one).")
    flags.DEFINE_integer("chunk", 2, "Chunk size c (must be one the model was trained with).")
    flags.DEFINE_integer("steps_per_chunk", 4, "Micro steps s per macro step.")
    flags.DEFINE_integer("reference_frames", None, "K reference frames (default: as trained).")
    flags.DEFINE_float("guidance", 1.0, "Classifier-free guidance scale (<= 1: off).")


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


def build_streamer(checkpoint: str, chunk: int, steps_per_chunk: int, reference_frames, guidance: float):
    """(TrainConfig, Streamer) or exit 2 naming the bad checkpoint / chunk size / partition."""
    try:
        cfg, graphdef, params = load_for_inference(checkpoint)
    except CheckpointError as e:
        fail(str(e))
    if chunk not in cfg.chunk_sizes:
        fail(f"--chunk={chunk} is not a chunk size this model was trained with: {tuple(cfg.chunk_sizes)}")
    K = cfg.reference_frames if reference_frames is None else reference_frames
    try:
        partition = Partition.from_buffer(cfg.buffer_len, chunk, steps_per_chunk, K)
    except ValueError as e:
        fail(f"invalid partition: {e}")
    ae = PatchAutoencoder(cfg.autoencoder_factor)
    latent = ae.latent_shape((1, cfg.data.frame_size, cfg.data.frame_size, 3))[1:]
    streamer = Streamer(graphdef, params, partition, latent, lambda lat: float_to_frames(ae.decode(lat)),
                        schedule=cfg.schedule, guidance_scale=guidance)
    return cfg, streamer
