"""Video-to-video input encoded as the stream advances (sampling.video_input): the latents equal one encode of the
whole input, for a per-frame and for a causal (Wan) autoencoder, and the input is encoded only as far as the stream
has read it; a stream from it equals the stream from the latents encoded up front."""
import jax
import numpy as np
import pytest
from flax import nnx

from helpers import tiny_model
from streamdit_jax.models.autoencoder import PatchAutoencoder
from streamdit_jax.models.wan_vae import WanVAEConfig, WanVideoAutoencoder
from streamdit_jax.partition import Partition
from streamdit_jax.pixels import frames_to_float
from streamdit_jax.sampling.stream import Streamer
from streamdit_jax.sampling.video_input import StreamedVideoLatents, count_input_frames, streamed_input


def clip(n, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_a_per_frame_input_is_encoded_chunk_by_chunk_as_read_and_equals_one_encode():
    ae, frames = PatchAutoencoder(2), clip(11)
    lazy = StreamedVideoLatents(iter(frames), 11, (16, 16, 3), ae, chunk=2)
    assert len(lazy) == 11 and lazy.shape == (11, 8, 8, 12) and lazy.encoded == 0
    whole = np.asarray(ae.encode({}, frames_to_float(frames)))
    np.testing.assert_array_equal(lazy[np.arange(3)], whole[:3])
    assert lazy.encoded == 4  # two chunks of 2: only what was asked for, rounded up to whole chunks
    np.testing.assert_array_equal(lazy[np.minimum(np.arange(8) + 6, 10)], whole[np.minimum(np.arange(8) + 6, 10)])
    with pytest.raises(IndexError):
        lazy[np.asarray([11])]


def test_a_causal_wan_input_streams_through_the_carried_encoder_state_and_equals_one_encode():
    config = WanVAEConfig(base_dim=8, z_dim=4, dim_mult=(1, 2, 2, 2), num_res_blocks=1,
                          latents_mean=(0.1, -0.2, 0.3, 0.0), latents_std=(1.5, 0.5, 2.0, 1.0))
    ae = WanVideoAutoencoder.random(config, seed=3)
    frames = clip(19)  # 1 + 4 * 4 = 17 used: 5 latent frames; the last 2 frames are dropped
    lazy = StreamedVideoLatents(iter(frames), 19, (16, 16, 3), ae, chunk=2)
    assert lazy.shape == (5, 2, 2, 4)
    first = lazy[np.asarray([0])]
    assert lazy.encoded == 2  # the first chunk: 1 + 4 video frames -> 2 latent frames
    encode = jax.jit(ae.encode)
    whole = np.asarray(encode(ae.params, frames_to_float(frames[:17])[None]))[0]
    np.testing.assert_allclose(first, whole[:1], atol=1e-5)
    np.testing.assert_allclose(lazy[np.arange(5)], whole, atol=1e-5)
    # without the carried state (every chunk encoded as a stream's first) the later latents differ
    restarted = [np.asarray(encode(ae.params, frames_to_float(frames[s:s + n])[None]))[0]
                 for s, n in ((0, 5), (5, 5), (10, 5))]
    assert not np.allclose(np.concatenate(restarted)[2:4], whole[2:4], atol=1e-3)


def test_a_stream_from_a_file_read_as_it_advances_equals_the_stream_from_latents_encoded_up_front(tmp_path):
    import imageio.v3 as iio
    frames = clip(9, seed=4)
    path = tmp_path / "in.gif"
    iio.imwrite(path, frames, duration=100, loop=0)
    ae = PatchAutoencoder(2)
    graphdef, params = nnx.split(tiny_model(seed=1, latent_channels=12, window=(4, 2, 2)))
    streamer = Streamer(graphdef, params, Partition.from_buffer(8, 2, 1), (8, 8, 12), ae)
    assert count_input_frames(str(path)) == 9 and count_input_frames(str(path), 4) == 4
    lazy = streamed_input(str(path), 16, ae, chunk=2)
    from streamdit_jax.video_reader import iter_frames
    up_front = np.asarray(ae.encode({}, frames_to_float(np.stack(list(iter_frames(str(path), (16, 16)))))))
    run = lambda video: np.concatenate(list(streamer.latents("a red circle moving left", None, seed=2, video=video,
                                                             strength=0.4)))
    np.testing.assert_array_equal(run(lazy), run(up_front))
    with pytest.raises(ValueError, match="is not a file"):
        count_input_frames(str(tmp_path / "missing.mp4"))
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="broken.mp4' cannot be read"):
        count_input_frames(str(tmp_path / "broken.mp4"))
