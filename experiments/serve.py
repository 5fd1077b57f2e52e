r"""Serve the live page: one model streaming in real time to any number of browsers, prompts typed on the page.

  python -m experiments.serve                      # the bundled checkpoint on http://127.0.0.1:8080/
  python -m experiments.serve --checkpoint=DIR --port=0 --prompt="a red circle moving left" --fps=8

The page shows the video, the prompt on screen, FPS / time to first frame / chunk latency, and a "save" link to the
session's record, which `experiments.evaluate --checkpoint=(the same) --schedules=FILE` replays frame for frame.
Without a browser:

  curl -s localhost:8080/state
  curl -X POST -d '{"prompt": "a blue square moving up"}' localhost:8080/prompt
  curl -s localhost:8080/schedule.jsonl > session.schedule.jsonl

The server listens on 127.0.0.1 unless --host says otherwise (anyone who can reach it may watch and switch the
prompt: there is no authentication). --port=0 picks a free port; the address is printed once it listens. --record
also keeps the record in a file, rewritten whenever a switch has been streamed. Ctrl-C stops it. Bad flags exit
with code 2 before the checkpoint is read; a port that cannot be bound exits with code 1. Routes, transport and
robustness: streamdit_jax/serving/app.py.
"""
from __future__ import annotations

import asyncio
import ipaddress
import sys

from absl import app, flags

from experiments.flag_parsing import parse_flags
from experiments.streaming import (build_streamer, check_sampling_flags, checked, define_stream_flags, fail,
                                   quiet_library_logs)
from streamdit_jax.sampling.schedules import check_int, check_seed
from streamdit_jax.serving.session import MAX_FPS, check_prompt

define_stream_flags()
flags.DEFINE_string("prompt", "a red circle moving left", "The first prompt (the page switches it).")
flags.DEFINE_integer("fps", 8, f"Frames per second the stream is released at (real time), in [1, {MAX_FPS}].")
flags.DEFINE_integer("seed", 0, "Noise seed.")
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; anything but a loopback one opens the page (and its "
                    "prompt box) to the network.")
flags.DEFINE_integer("port", 8080, "Port to listen on; 0 picks a free one (printed).")
flags.DEFINE_integer("viewer_queue", 4, "Frames each viewer's queue holds; a slower viewer loses its oldest ones.")
flags.DEFINE_string("record", "", "Also keep the session's record in this file (.jsonl), rewritten at each switch.")
FLAGS = flags.FLAGS


def check_flags() -> str:
    """Every flag that needs no checkpoint, or exit 2 naming the value; returns the first prompt."""
    prompt = checked(check_prompt, FLAGS.prompt)
    checked(check_int, FLAGS.fps, "--fps", 1, MAX_FPS, meaning="frames per second")
    checked(check_int, FLAGS.port, "--port", 0, 65535, meaning="0: a free one")
    checked(check_int, FLAGS.viewer_queue, "--viewer_queue", 1, meaning="frames per viewer")
    checked(check_seed, FLAGS.seed, "--seed")
    check_sampling_flags()
    if not FLAGS.host.strip():
        fail("--host is empty; give e.g. --host=127.0.0.1")
    return prompt


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


async def serve(web_app, host: str, port: int) -> None:
    from streamdit_jax.serving.app import start_site
    try:
        runner, port = await start_site(web_app, host, port)
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e}", code=1)
    shown = f"[{host}]" if ":" in host else host
    print(f"live page: http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv):
    del argv
    quiet_library_logs()
    prompt = check_flags()
    try:
        from streamdit_jax.serving.app import make_app
    except ImportError as e:
        fail(f"the live page needs aiohttp ({e}): pip install -e '.[serve]' (or make serve)", code=1)
    if not is_loopback(FLAGS.host):
        print(f"warning: --host={FLAGS.host} opens the live page to the network: anyone who reaches it can watch "
              f"and switch the prompt (no authentication)", file=sys.stderr)
    # live: one chunk per queue, so a posted prompt reaches the viewers after a few chunks; no GcPause: a server
    # runs indefinitely and must collect its garbage
    _, streamer = build_streamer(FLAGS.checkpoint, FLAGS.chunk, FLAGS.steps_per_chunk, FLAGS.reference_frames,
                                 FLAGS.guidance, False, FLAGS.warmup_frames, queue_size=1,
                                 text_encoder=FLAGS.text_encoder)
    web_app = make_app(streamer, prompt, fps=FLAGS.fps, seed=FLAGS.seed, viewer_queue=FLAGS.viewer_queue,
                       record_path=FLAGS.record or None)
    try:
        asyncio.run(serve(web_app, FLAGS.host, FLAGS.port))
    except KeyboardInterrupt:
        pass
    if FLAGS.record:
        print(f"session's record (replay with experiments.evaluate --schedules=): {FLAGS.record}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
