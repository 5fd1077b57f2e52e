r"""Stream video from a trained StreamDiT checkpoint, with a live prompt schedule.

  python -m experiments.stream --checkpoint=DIR --prompts="0:a red circle moving left;64:a blue square moving up" \
      --num_frames=256 --output=out.mp4

--live makes it interactive: the stream is paced to --fps (real time) and every line typed on standard input becomes
the prompt from the next chunk on (--prompts gives the first). The switches as streamed are kept in
OUTPUT.schedule.jsonl (rewritten at each switch): one line in experiments.evaluate's schedule format with the
sampling settings used, so `experiments.evaluate --checkpoint=(the same) --schedules=` that file replays the session
exactly and scores it (its sampling flags, if given, win over the record's). The final "wrote N frames" counts the
frames in the file (a Ctrl-C lets the chunk being written finish).

  python -m experiments.stream --live --prompts="0:a red circle moving left" --num_frames=0 --output=live.mp4

--num_frames=0 streams until Ctrl-C. The output (.mp4 or .gif) is written progressively, so a killed run leaves a
playable file. --input_video streams video-to-video: the buffer is filled with the input's frames noised to each
chunk's level, and frames are generated below noise level --strength (1 ignores the input). The partition (--chunk,
--steps_per_chunk, --reference_frames) and --guidance are chosen at run time among what the model was trained for.
Bad inputs exit with code 2 and a message naming the value, before the checkpoint is read: the output must be a
.mp4/.gif in an existing writable directory, --fps in [1, 120] ([1, 50] for .gif), --num_frames >= 0, --seed in
[0, 2^32 - 1], --strength in (0, 1], --guidance finite in [1, 100] (1: off), --chunk / --steps_per_chunk >= 1,
--reference_frames / --warmup_frames >= 0. A prompt longer than the model's text encoder reads is streamed cut, with
a warning naming it. An output that cannot be written after all (ffmpeg failed, the disk filled up) exits with code
1 and an error naming it, never "wrote": the file is read back at the end and must hold every frame written.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import (build_streamer, check_sampling_flags, checked, define_stream_flags, fail,
                                   parse_prompts, quiet_library_logs)
from streamdit_jax.profiling import ProfileWindow, parse_profile_steps
from streamdit_jax.sampling.live import Pacer, ScheduleRecorder, StreamOutput, start_reading
from streamdit_jax.sampling.schedules import LivePrompt, check_int, check_seed
from streamdit_jax.sampling.video_input import streamed_input
from streamdit_jax.sampling.video_io import ProgressiveWriter, check_fps, check_video_path

define_stream_flags()
flags.DEFINE_bool("pause_gc", True, "Keep Python's cyclic GC out of the chunks (GcPause: steadier chunk latency).")
flags.DEFINE_string("prompts", "0:a red circle moving left;64:a blue square moving up",
                    "Prompt schedule 'frame:prompt;frame:prompt' (frame 0 required).")
flags.DEFINE_integer("num_frames", 256, "Frames to stream (0 = until Ctrl-C).")
flags.DEFINE_string("output", "stream.mp4", "Output video (.mp4 or .gif), written progressively.")
flags.DEFINE_integer("seed", 0, "Noise seed.")
flags.DEFINE_integer("fps", 8, "Frames per second of the output video, in [1, 120] ([1, 50] for .gif); --live "
                     "paces the stream to it.")
flags.DEFINE_string("input_video", "", "Video-to-video: an input video (.mp4, .gif, ...) to restyle by the prompts.")
flags.DEFINE_float("strength", 0.6, "Video-to-video: noise level in (0, 1] below which frames are generated.")
flags.DEFINE_bool("live", False, "Interactive, paced to --fps: each line on standard input becomes the prompt from "
                  "the next chunk on (--prompts gives the first); the switches are kept in OUTPUT.schedule.jsonl.")
flags.DEFINE_string("profile_steps", "", "START:STOP: write a jax.profiler trace of the macro steps that emit chunks "
                    "START..STOP-1 (counted from 0, warm-up not included) to --profile_dir (see README 'Profiling').")
flags.DEFINE_string("profile_dir", "", "Where --profile_steps writes its trace (default: OUTPUT.profile).")
FLAGS = flags.FLAGS


def check_flags() -> dict[int, str]:
    """Every flag that needs no checkpoint, or exit 2 naming the value (nothing is loaded or compiled yet)."""
    schedule = parse_prompts(FLAGS.prompts)
    checked(parse_profile_steps, FLAGS.profile_steps)
    checked(check_int, FLAGS.num_frames, "--num_frames", 0, meaning="0: until Ctrl-C")
    checked(check_seed, FLAGS.seed, "--seed")
    if not 0.0 < FLAGS.strength <= 1.0:  # nan fails too
        fail(f"--strength={FLAGS.strength!r} must be in (0, 1]")
    check_sampling_flags()
    ext = checked(check_video_path, FLAGS.output, "--output")
    checked(check_fps, FLAGS.fps, ext, "--fps")
    if FLAGS.input_video and not os.path.isfile(FLAGS.input_video):
        fail(f"--input_video={FLAGS.input_video!r} is not a file")
    if FLAGS.live and FLAGS["prompts"].present and len(schedule) > 1:
        fail(f"--live starts from one prompt and takes its switches from standard input; --prompts has switches at "
             f"frames {sorted(schedule)[1:]} (give only '0:a prompt')")
    return schedule


def main(argv):
    del argv
    quiet_library_logs()
    schedule = check_flags()
    writer = checked(ProgressiveWriter, FLAGS.output, fps=FLAGS.fps)
    # live: one chunk per queue, so a typed prompt reaches the output after a few chunks, not after eight
    cfg, streamer = build_streamer(FLAGS.checkpoint, FLAGS.chunk, FLAGS.steps_per_chunk, FLAGS.reference_frames,
                                   FLAGS.guidance, FLAGS.pause_gc, FLAGS.warmup_frames,
                                   queue_size=1 if FLAGS.live else 4, text_encoder=FLAGS.text_encoder)
    streamer.profile = ProfileWindow(parse_profile_steps(FLAGS.profile_steps),  # checked by check_flags
                                     FLAGS.profile_dir or FLAGS.output + ".profile")
    video = None
    if FLAGS.input_video:
        try:  # encoded chunk by chunk as the stream reaches it (a causal autoencoder carries its state)
            video = streamed_input(FLAGS.input_video, cfg.data.frame_hw, cfg.make_autoencoder(),
                                   streamer.partition.c, FLAGS.num_frames or None)
        except ValueError as e:
            fail(f"--input_video: {e}")
        print(f"video-to-video from {FLAGS.input_video}: {len(video)} latent frames at strength {FLAGS.strength}")
    from tqdm import tqdm
    total = FLAGS.num_frames or None
    if video is not None:
        total = len(video) if total is None else min(total, len(video))
    bar = tqdm(total=total, unit="frame", desc="stream")
    say = lambda message: tqdm.write(message, file=sys.stderr)
    live = recorder = pacer = None
    if FLAGS.live:  # real time, so that typing follows the video; the switches kept as a replayable record
        live, pacer = LivePrompt(schedule[0]), Pacer(FLAGS.fps)
        recorder = ScheduleRecorder(FLAGS.output + ".schedule.jsonl", live, FLAGS.seed, streamer.sampling_settings())
        start_reading(live, sys.stdin, say)
    output = StreamOutput(writer, pacer, recorder)  # ends at Ctrl-C too, a chunk being written finishing first
    try:
        output.write_all(streamer.frames(live or schedule, total, FLAGS.seed, video=video, strength=FLAGS.strength),
                         on_chunk=lambda frames: bar.update(len(frames)),
                         on_recording=lambda: say("live: streaming; type a prompt and press Enter to switch"))
    finally:
        bar.close()
        streamer.profile.close()  # a stream that ended inside the window still writes its trace
        if streamer.profile.written:
            print(f"wrote the profile trace to {streamer.profile.log_dir}", file=sys.stderr)
        in_file = output.close()  # also when the stream itself failed; read back: the frames the file holds
        if recorder is not None and output.written:
            print(f"live session's schedule (replay or score with experiments.evaluate --schedules=): {recorder.path}")
    written, write_error = output.written, output.error
    if write_error is not None:
        fail(f"{write_error} ({written} frames were sent to it)", code=1)
    if not in_file:
        fail(f"stopped before the first frame: {FLAGS.output} was not written", code=1)
    if in_file != written:  # the writer checked its file against its own count; this checks that count
        fail(f"{FLAGS.output} holds {in_file} frames, but {written} were written", code=1)
    stats = streamer.stats.summary()  # its frame count may include frames decoded but never written (Ctrl-C)
    print(f"wrote {FLAGS.output}: {in_file} frames, time to first frame {stats['time_to_first_frame_s']:.2f} s, "
          f"p50 {stats['p50_chunk_ms']:.1f} ms / p99 {stats['p99_chunk_ms']:.1f} ms per chunk, "
          f"{stats['frames_per_second']:.1f} frames/s")
    if pacer is not None:
        print(f"real time at {FLAGS.fps} frames/s: {pacer.late} of {pacer.chunks} chunks more than a frame late"
              + (" (the model is slower than --fps: lower --fps or --steps_per_chunk)"
                 if pacer.late > pacer.chunks // 10 else ""))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
