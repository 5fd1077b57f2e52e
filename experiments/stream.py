r"""Stream video from a trained StreamDiT checkpoint, with a live prompt schedule.

  python -m experiments.stream --checkpoint=DIR --prompts="0:a red circle moving left;64:a blue square moving up" \
      --num_frames=256 --output=out.mp4

--num_frames=0 streams until Ctrl-C. The output (.mp4 or .gif) is written progressively, so a killed run leaves a
playable file. The partition (--chunk, --steps_per_chunk, --reference_frames) and --guidance are chosen at run time
among what the model was trained for. Bad inputs exit with code 2 and a message naming the value.
"""
from __future__ import annotations

from absl import app, flags

from experiments.streaming import build_streamer, define_stream_flags, fail
from streamdit_jax.sampling.stream import normalize_schedule
from streamdit_jax.sampling.video_io import ProgressiveWriter

define_stream_flags()
flags.DEFINE_string("prompts", "0:a red circle moving left;64:a blue square moving up",
                    "Prompt schedule 'frame:prompt;frame:prompt' (frame 0 required).")
flags.DEFINE_integer("num_frames", 256, "Frames to stream (0 = until Ctrl-C).")
flags.DEFINE_string("output", "stream.mp4", "Output video (.mp4 or .gif), written progressively.")
flags.DEFINE_integer("seed", 0, "Noise seed.")
flags.DEFINE_integer("fps", 8, "Frames per second of the output video.")
FLAGS = flags.FLAGS


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
    _, streamer = build_streamer(FLAGS.checkpoint, FLAGS.chunk, FLAGS.steps_per_chunk, FLAGS.reference_frames,
                                 FLAGS.guidance)
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
