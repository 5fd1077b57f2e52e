r"""Stream video from a trained StreamDiT checkpoint, with a live prompt schedule.

  python -m experiments.stream --checkpoint=DIR --prompts="0:a red circle moving left;64:a blue square moving up" \
      --num_frames=256 --output=out.mp4

--num_frames=0 streams until Ctrl-C. The output (.mp4 or .gif) is written progressively, so a killed run leaves a
playable file. The partition (--chunk, --steps_per_chunk, --reference_frames) and --guidance are chosen at run time
among what the model was trained for. Bad inputs exit with code 2 and a message naming the value.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags

from streamdit_jax.data.pipeline import float_to_frames
from streamdit_jax.models.autoencoder import PatchAutoencoder
from streamdit_jax.partition import Partition
from streamdit_jax.sampling.stream import Streamer, normalize_schedule
from streamdit_jax.sampling.video_io import ProgressiveWriter
from streamdit_jax.training.restore import CheckpointError, load_for_inference

BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints", "shapes_small")

flags.DEFINE_string("checkpoint", BUNDLED, "Training workdir holding checkpoints/ (default: the bundled one).")
flags.DEFINE_string("prompts", "0:a red circle moving left;64:a blue square moving up",
                    "Prompt schedule 'frame:prompt;frame:prompt' (frame 0 required).")
flags.DEFINE_integer("num_frames", 256, "Frames to stream (0 = until Ctrl-C).")
flags.DEFINE_string("output", "stream.mp4", "Output video (.mp4 or .gif), written progressively.")
flags.DEFINE_integer("seed", 0, "Noise seed.")
flags.DEFINE_integer("chunk", 2, "Chunk size c (must be one the model was trained with).")
flags.DEFINE_integer("steps_per_chunk", 4, "Micro steps s per macro step.")
flags.DEFINE_integer("reference_frames", None, "K reference frames (default: as trained).")
flags.DEFINE_float("guidance", 1.0, "Classifier-free guidance scale (<= 1: off).")
flags.DEFINE_integer("fps", 8, "Frames per second of the output video.")
FLAGS = flags.FLAGS


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_prompts(text: str) -> dict[int, str]:
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


def main(argv):
    del argv
    schedule = parse_prompts(FLAGS.prompts)
    if FLAGS.num_frames < 0:
        fail(f"--num_frames={FLAGS.num_frames} must be >= 0 (0 = until Ctrl-C)")
    try:
        writer = ProgressiveWriter(FLAGS.output, fps=FLAGS.fps)
    except ValueError as e:
        fail(str(e))
    try:
        cfg, graphdef, params = load_for_inference(FLAGS.checkpoint)
    except CheckpointError as e:
        fail(str(e))
    if FLAGS.chunk not in cfg.chunk_sizes:
        fail(f"--chunk={FLAGS.chunk} is not a chunk size this model was trained with: {tuple(cfg.chunk_sizes)}")
    K = cfg.reference_frames if FLAGS.reference_frames is None else FLAGS.reference_frames
    try:
        partition = Partition.from_buffer(cfg.buffer_len, FLAGS.chunk, FLAGS.steps_per_chunk, K)
    except ValueError as e:
        fail(f"invalid partition: {e}")
    ae = PatchAutoencoder(cfg.autoencoder_factor)
    latent = ae.latent_shape((1, cfg.data.frame_size, cfg.data.frame_size, 3))[1:]
    streamer = Streamer(graphdef, params, partition, latent, lambda lat: float_to_frames(ae.decode(lat)),
                        schedule=cfg.schedule, guidance_scale=FLAGS.guidance)
    from tqdm import tqdm
    total = FLAGS.num_frames or None
    bar = tqdm(total=total, unit="frame", desc="stream")
    try:
        for frames in streamer.frames(schedule, total, FLAGS.seed):
            writer.write(frames)
            bar.update(len(frames))
    except KeyboardInterrupt:
        pass
    finally:
        writer.close()
        bar.close()
    stats = streamer.stats.summary()
    print(f"wrote {FLAGS.output}: {stats['frames']} frames, time to first frame {stats['time_to_first_frame_s']:.2f} s, "
          f"p50 {stats['p50_chunk_ms']:.1f} ms / p99 {stats['p99_chunk_ms']:.1f} ms per chunk, "
          f"{stats['frames_per_second']:.1f} frames/s")


if __name__ == "__main__":
    app.run(main)
