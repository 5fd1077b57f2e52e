r"""`make demo`: the streaming machinery end to end on embedded defaults, offline, in about a minute on a CPU.

  python -m experiments.demo [--output_dir=demo_out] [--num_frames=96]

1. Oracle stream: a known target video (a coloured square moving right, wrapping) is streamed through the real jitted
   stream start (T2V cache, Sec. 6) and buffer step (Eq. 6) with the exact velocity field of the straight path towards
   it. The stream must reproduce the video frame for frame: the printed error is computed, not assumed. Written to
   OUTPUT_DIR/oracle_stream.gif and .mp4.
2. The `small` StreamDiT (random weights: the trained checkpoint arrives with the streaming issue) streams a few
   chunks through the same buffer step, with progress and timing, to show the model path compiles once and runs.
"""
from __future__ import annotations

import os
import time

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx
from tqdm import tqdm

from experiments import benchmarking
from streamdit_jax import flow
from streamdit_jax.data.pipeline import float_to_frames
from streamdit_jax.models import get_model_config
from streamdit_jax.models.factory import create_model
from streamdit_jax.partition import NoiseSchedule, Partition
from streamdit_jax.sampling.buffer import make_buffer_step, make_stream_start, model_denoise_fn

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "demo_out", "Where the demo writes its videos.")
flags.DEFINE_integer("num_frames", 96, "Frames of the oracle stream.")
flags.DEFINE_integer("model_chunks", 6, "Chunks streamed by the random-weight small model.")


def moving_square_video(num_frames: int, size: int = 32, square: int = 8) -> np.ndarray:
    """[T, size, size, 3] in [-1, 1]: a yellow square moving right by one pixel per frame, wrapping, on dark blue."""
    video = np.empty((num_frames, size, size, 3), np.float32)
    video[:] = (-0.8, -0.6, 0.2)
    top = (size - square) // 2
    for t in range(num_frames):
        cols = (np.arange(square) + t) % size
        video[t, top:top + square][:, cols] = (0.9, 0.9, -0.9)
    return video


def oracle_stream(num_frames: int, out_dir: str) -> list:
    partition, schedule = Partition.from_buffer(16, 2, 4), NoiseSchedule()
    target = jnp.asarray(moving_square_video(num_frames + partition.B))

    def denoise(params, x, tau, cond, frames):
        return flow.oracle_velocity(x, tau, params[frames][None])

    start = make_stream_start(denoise, partition, schedule)
    step = make_buffer_step(denoise, partition, schedule)
    t0 = time.perf_counter()
    state, first = start(target, jax.random.key(0), jnp.zeros((1, partition.B, 32, 32, 3)), jnp.zeros((1,)))
    chunks = [np.asarray(first[0])]
    with tqdm(total=num_frames, desc="oracle stream", unit="frame") as bar:
        while sum(len(c) for c in chunks) < num_frames:
            state, chunk = step(target, state, jnp.zeros((1,)))
            chunks.append(np.asarray(chunk[0]))
            bar.update(chunk.shape[1])
    seconds = time.perf_counter() - t0
    frames = np.concatenate(chunks)[:num_frames]
    err = float(np.abs(frames - np.asarray(target[:num_frames])).max())
    video = float_to_frames(frames)
    os.makedirs(out_dir, exist_ok=True)
    iio.imwrite(os.path.join(out_dir, "oracle_stream.gif"), video, duration=100, loop=0)
    iio.imwrite(os.path.join(out_dir, "oracle_stream.mp4"), video, fps=10, extension=".mp4")
    return ["oracle stream (exact velocity)", str(partition), num_frames, f"{seconds:.1f}",
            f"max abs(frame - target) = {err:.2e}"]


def model_stream(chunks: int) -> list:
    cfg = get_model_config("small")
    partition = Partition.from_buffer(16, 2, 1)
    graphdef, params = create_model(cfg, seed=0)
    encode = jax.jit(lambda p, t: nnx.merge(graphdef, p).encode_text(t))
    model = nnx.merge(graphdef, params)
    cond = encode(params, jnp.asarray(model.tokenize(["a red circle moving left"])))
    start = make_stream_start(model_denoise_fn(graphdef), partition)
    step = make_buffer_step(model_denoise_fn(graphdef), partition)
    t0 = time.perf_counter()
    state, _ = benchmarking.block(start(params, jax.random.key(0), jnp.zeros((1, 16, 16, 16, 12)), cond))
    startup = time.perf_counter() - t0
    times = []
    for _ in tqdm(range(chunks), desc="small StreamDiT (random weights)", unit="chunk"):
        t = time.perf_counter()
        state, chunk = benchmarking.block(step(params, state, cond))
        times.append(time.perf_counter() - t)
    steady = np.median(times[1:]) if len(times) > 1 else times[0]
    return ["small StreamDiT, random weights", str(partition), chunks * partition.c, f"{startup:.1f} (start)",
            f"{1e3 * steady:.0f} ms/chunk after compile, {partition.c / steady:.1f} latent frames/s"]


def main(argv):
    del argv
    print(benchmarking.machine())
    rows = [oracle_stream(FLAGS.num_frames, FLAGS.output_dir), model_stream(FLAGS.model_chunks)]
    print(benchmarking.markdown_table(["run", "partition", "frames", "seconds", "result"], rows))
    print(f"videos: {FLAGS.output_dir}/oracle_stream.gif, {FLAGS.output_dir}/oracle_stream.mp4")


if __name__ == "__main__":
    app.run(main)
