r"""`make demo`: stream 256 frames with a two-prompt schedule from the bundled checkpoint, offline, on a CPU.

  python -m experiments.demo [--checkpoint=experiments/checkpoints/shapes_small] [--num_frames=256] \
      [--prompts="0:a red circle moving right;128:a blue square moving up"] [--output=demo]

Writes OUTPUT.mp4 and OUTPUT.gif progressively (a killed run leaves playable files), shows progress, then scores the
generated frames alone with the shapes-world evaluator (present / colour / shape / direction per frame, per 64-frame
window, the switch lag) and prints the stream's timing.
"""
from __future__ import annotations

import numpy as np
from absl import app, flags
from tqdm import tqdm

from experiments.flag_parsing import parse_flags
from experiments.streaming import BUNDLED, build_streamer, checked, fail, parse_prompts, quiet_library_logs
from streamdit_jax.evaluation import evaluate_stream, format_table
from streamdit_jax.sampling.video_io import ProgressiveWriter

flags.DEFINE_string("checkpoint", BUNDLED, "Training workdir holding checkpoints/ (default: the bundled one).")
flags.DEFINE_string("prompts", "0:a red circle moving right;128:a blue square moving up",
                    "Prompt schedule 'frame:prompt;frame:prompt'.")
flags.DEFINE_integer("num_frames", 256, "Frames to stream.")
flags.DEFINE_string("output", "demo", "Output path without extension: OUTPUT.mp4 and OUTPUT.gif.")
flags.DEFINE_integer("seed", 0, "Noise seed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    quiet_library_logs()
    schedule = parse_prompts(FLAGS.prompts)
    if FLAGS.num_frames < 1:
        fail(f"--num_frames={FLAGS.num_frames} must be >= 1")
    # the outputs are checked (and opened) before the checkpoint is read: a bad path costs no work
    writers = [checked(ProgressiveWriter, f"{FLAGS.output}{ext}", fps=8) for ext in (".mp4", ".gif")]
    cfg, streamer = build_streamer(FLAGS.checkpoint)  # the checkpoint's default_sampling
    print(f"checkpoint {FLAGS.checkpoint}: {cfg.model.width}-wide, {cfg.model.depth}-block StreamDiT, "
          f"{'x'.join(map(str, cfg.data.frame_hw))} frames, partition {streamer.partition}")
    for frame, prompt in sorted(schedule.items()):
        print(f"  from frame {frame:4d}: {prompt!r}")
    frames = []
    with tqdm(total=FLAGS.num_frames, unit="frame", desc="stream") as bar:
        try:
            for chunk in streamer.frames(schedule, FLAGS.num_frames, FLAGS.seed):
                for w in writers:
                    w.write(chunk)
                frames.append(chunk)
                bar.update(len(chunk))
        finally:
            written = [w.close() for w in writers]
    stats = streamer.stats.summary()
    print(f"wrote {FLAGS.output}.mp4 and {FLAGS.output}.gif: {written[0]} frames; time to first frame "
          f"{stats['time_to_first_frame_s']:.1f} s (compilation included), p50 {stats['p50_chunk_ms']:.0f} ms / p99 "
          f"{stats['p99_chunk_ms']:.0f} ms per {streamer.partition.c}-frame chunk, {stats['frames_per_second']:.1f} "
          f"frames/s")
    print("\nevaluator (from the generated frames alone, against the prompt active at each frame):")
    print(format_table(evaluate_stream(np.concatenate(frames), schedule)))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
