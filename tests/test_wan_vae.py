"""models.wan_vae against diffusers' PyTorch ``AutoencoderKLWan`` on a tiny random Wan2.1-style VAE saved with
``save_pretrained`` (base_dim 8, z_dim 4, levels [1, 2, 2, 2], temporal downsampling [False, True, True]: the real
model's structure at a fraction of its width, with non-trivial latents_mean / latents_std): the posterior mean and
the decoded video of a 29-frame, 32x24 clip (non-square, so a transposed reshape shows), float32 and bfloat16; the
streaming decoder and encoder (chunks of c = 2 latent frames, the state carried) against one whole-clip pass, and
their trace counts; Wan's RMS norm down to its floor and the two causal conv implementations; the loader (sharded
files, a nested ``vae/`` folder, onto a mesh) and its errors.

The reference tests need torch + diffusers and skip with the reason when they are missing; the error tests that need
no reference folder run without them.
"""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from streamdit_jax.models import wan_vae
from streamdit_jax.models.wan_vae import StreamState, WanVAEConfig, load_wan_vae

TOL = 1e-4  # float32 against diffusers
CHUNK_TOL = 2e-5  # float32 chunked against whole-clip: the same arithmetic, convolutions of other shapes (1e-5 seen)
# Every weight ~ N(0, 0.2^2) (norm gammas 1 + N(0, 0.2^2)): far from diffusers' init (zero biases, unit gammas),
# and the decoded video stays mostly inside the [-1, 1] clamp.
SCALE = 0.2
TINY = dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
            temperal_downsample=[False, True, True], latents_mean=[0.3, -0.5, 0.1, 0.8],
            latents_std=[1.7, 0.6, 2.2, 1.3])
BATCH, FRAMES, HEIGHT, WIDTH = 2, 29, 32, 24  # 29 = 1 + 4 * 7 video frames -> 8 latent frames of 4 x 3
CHUNK = 2  # latent frames per stream chunk: 4 chunks of the 8


def write_tiny_reference(directory, seed: int = 0, **save_kwargs):
    """Saves a tiny random diffusers ``AutoencoderKLWan`` (``TINY``) to ``directory``; returns it in eval mode."""
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    model = AutoencoderKLWan(**TINY).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * SCALE + (1.0 if name.endswith("gamma") else 0.0))
    model.save_pretrained(directory, **save_kwargs)
    return model


@pytest.fixture(scope="module")
def reference(torch, tmp_path_factory):
    """(diffusers model, its save_pretrained directory)."""
    directory = tmp_path_factory.mktemp("wan_vae")
    return write_tiny_reference(directory), str(directory)


@pytest.fixture(scope="module")
def ours(reference):
    return load_wan_vae(reference[1])


@pytest.fixture(scope="module")
def clip():
    """(video [b, T, H, W, 3] in [-1, 1], latents [b, t, h, w, z]): smooth random motion, and unit Gaussians."""
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, (BATCH, 1, HEIGHT, WIDTH, 3))
    drift = rng.normal(0, 0.08, (BATCH, FRAMES, HEIGHT, WIDTH, 3)).cumsum(axis=1)
    video = np.clip(base + drift, -1, 1).astype(np.float32)
    latents = rng.normal(size=(BATCH, 1 + (FRAMES - 1) // 4, HEIGHT // 8, WIDTH // 8, TINY["z_dim"]))
    return video, latents.astype(np.float32)


@pytest.fixture(scope="module")
def full(ours, clip):
    """Our whole-clip (encode(video), decode(latents)), jitted once each."""
    video, latents = clip
    return (np.asarray(jax.jit(ours.encode)(ours.params, video)),
            np.asarray(jax.jit(ours.decode)(ours.params, latents)))


def _normalisation(torch):
    mean = torch.tensor(TINY["latents_mean"]).view(1, -1, 1, 1, 1)
    std = torch.tensor(TINY["latents_std"]).view(1, -1, 1, 1, 1)
    return mean, std


def _reference_encode(torch, model, video):
    """diffusers' posterior mean, normalised as Wan's pipelines do, channels last."""
    mean, std = _normalisation(torch)
    with torch.no_grad():
        mu = model.encode(torch.from_numpy(video).permute(0, 4, 1, 2, 3)).latent_dist.mean
    return ((mu - mean) / std).permute(0, 2, 3, 4, 1).numpy()


def _reference_decode(torch, model, latents):
    mean, std = _normalisation(torch)
    with torch.no_grad():
        video = model.decode(torch.from_numpy(latents).permute(0, 4, 1, 2, 3) * std + mean).sample
    return video.permute(0, 2, 3, 4, 1).numpy()


# ------------------------------------------------------------------------------------------------------ parity
def test_encode_decode_parity(torch, reference, ours, full, clip):
    """encode (normalised posterior mean) and decode (clamped video) of the 29-frame clip within 1e-4 of diffusers
    in float32; bfloat16 reported and loosely bounded."""
    model, directory = reference
    video, latents = clip
    ref_latents, ref_video = _reference_encode(torch, model, video), _reference_decode(torch, model, latents)
    our_latents, our_video = full
    assert our_latents.shape == ref_latents.shape == latents.shape
    assert our_video.shape == ref_video.shape == video.shape and our_video.dtype == np.float32
    assert 0.05 < np.abs(ref_video).mean() and np.mean(np.abs(ref_video) == 1.0) < 0.5, "reference video degenerate"
    enc_err = float(np.abs(our_latents - ref_latents).max())
    dec_err = float(np.abs(our_video - ref_video).max())
    ours16 = load_wan_vae(directory, dtype=jnp.bfloat16)
    assert jax.tree.leaves(ours16.params)[0].dtype == jnp.bfloat16
    enc16 = np.abs(np.asarray(jax.jit(ours16.encode)(ours16.params, video)) - ref_latents)
    dec16 = np.abs(np.asarray(jax.jit(ours16.decode)(ours16.params, latents)) - ref_video)
    print(f"float32 max abs error: encode {enc_err:.2e} (|ref| max {np.abs(ref_latents).max():.2f}), decode "
          f"{dec_err:.2e}; bfloat16 max / mean abs error: encode {enc16.max():.3f} / {enc16.mean():.4f}, decode "
          f"{dec16.max():.3f} / {dec16.mean():.4f}")
    assert enc_err < TOL and dec_err < TOL
    assert enc16.mean() < 0.02 and dec16.mean() < 0.02 and dec16.max() < 0.5, "bfloat16 is far off"


def test_rms_norm_parity_down_to_the_norm_floor(torch):
    """Wan's norm, x / max(||x||, 1e-12) * sqrt(C) * gamma, against diffusers' WanRMS_norm on vectors of norm 1e2
    down to 1e-14 (below the floor) and zero: a norm with an epsilon added to the mean square differs there."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm

    rng = np.random.default_rng(1)
    scales = 10.0 ** np.arange(-14, 3, dtype=np.float64)
    x = (rng.normal(size=(len(scales) + 1, 16)) * np.append(scales, 0.0)[:, None]).astype(np.float32)
    gamma = (1 + 0.2 * rng.normal(size=16)).astype(np.float32)
    ref = WanRMS_norm(16, images=False)
    with torch.no_grad():
        ref.gamma.copy_(torch.from_numpy(gamma).view(16, 1, 1, 1))
        expected = ref(torch.from_numpy(x).T[None, :, :, None, None])[0, :, :, 0, 0].T.numpy()
    norm = wan_vae.RMSNorm(16, dtype=jnp.float32, param_dtype=jnp.float32)
    norm.gamma[...] = jnp.asarray(gamma)
    np.testing.assert_allclose(np.asarray(norm(jnp.asarray(x))), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel, stride, cache_frames", [((3, 3, 3), 1, None), ((3, 1, 1), 1, None),
                                                          ((3, 1, 1), 2, 1)])
def test_conv_implementations_agree(kernel, stride, cache_frames):
    """A causal conv as one 3D convolution and as per-frame 2D convolutions summed over the time taps (the CPU
    default): the same numbers, for the 3x3x3 convs, the decoder's time conv and the encoder's stride-2 one."""
    from flax import nnx

    conv = wan_vae.CausalConv3d(5, 7, kernel, time_stride=stride, cache_frames=cache_frames, rngs=nnx.Rngs(0),
                                dtype=jnp.float32, param_dtype=jnp.float32, precision=None)
    conv.bias[...] = jnp.arange(7.0)
    conv.cache_key = "conv"
    x = jax.random.normal(jax.random.key(0), (2, 8, 6, 5, 5))
    outputs = {}
    for impl in ("3d", "time_taps"):
        conv.conv_impl = impl
        io = wan_vae.CacheIO({"conv": jnp.ones((2, conv.cache_frames, 6, 5, 5))})
        outputs[impl] = np.asarray(conv(x, io))
    assert outputs["3d"].shape == (2, 8 // stride, 6, 5, 7)
    np.testing.assert_allclose(outputs["time_taps"], outputs["3d"], atol=1e-5)


# --------------------------------------------------------------------------------------------------- streaming
def _counted(fn, counter: list):
    """``fn`` jitted, appending to ``counter`` each time it is traced (chex.assert_max_traces when installed)."""
    def traced(*args):
        counter.append(1)
        return fn(*args)
    try:
        import chex
        return jax.jit(chex.assert_max_traces(traced, n=2))
    except ImportError:
        return jax.jit(traced)


def test_chunked_decode_equals_full_decode(ours, full, clip):
    """Decoding the 8 latent frames in 4 chunks of 2 with the carried state equals one whole decode: 1 + 4 video
    frames from the first chunk, 8 from each later one; the jitted decode_chunk is traced twice (first chunk, then
    all others). With the caches zeroed before every chunk after the first (not carried) the output differs."""
    _, latents = clip
    traces = []
    step = _counted(ours.decode_chunk, traces)
    state = ours.init_decode_state(ours.params, latents[:, :CHUNK].shape)
    pieces, states = [], []
    for start in range(0, latents.shape[1], CHUNK):
        states.append(state)
        state, video = step(ours.params, state, latents[:, start:start + CHUNK])
        pieces.append(np.asarray(video))
    assert [p.shape[1] for p in pieces] == [1 + 4 * (CHUNK - 1)] + [4 * CHUNK] * 3
    assert len(traces) == 2, f"decode_chunk traced {len(traces)} times over 4 chunks"
    assert jax.tree.structure(states[1]) == jax.tree.structure(state)
    assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(states[1]), jax.tree.leaves(state)))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full[1], atol=CHUNK_TOL)
    # the same chunks, each after the first from zero caches: the history is lost at every chunk boundary
    fresh = StreamState(jax.tree.map(jnp.zeros_like, state.caches), started=True)
    for start, piece in zip(range(CHUNK, latents.shape[1], CHUNK), pieces[1:]):
        restarted = np.asarray(step(ours.params, fresh, latents[:, start:start + CHUNK])[1])
        assert np.abs(restarted - piece).max() > 1e-2, f"chunk at latent frame {start} ignores the carried caches"
    assert len(traces) == 2


def test_chunked_encode_equals_full_encode(ours, full, clip):
    """Encoding the 29 frames as chunks of 5, 8, 8, 8 frames with the carried state equals one whole encode (2
    latent frames per chunk); two traces."""
    video, _ = clip
    traces = []
    step = _counted(ours.encode_chunk, traces)
    state = ours.init_encode_state(ours.params, video[:, :1 + 4 * (CHUNK - 1)].shape)
    bounds = [0, 1 + 4 * (CHUNK - 1)] + [1 + 4 * (CHUNK - 1) + 4 * CHUNK * i for i in range(1, 4)]
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        state, latents = step(ours.params, state, video[:, lo:hi])
        pieces.append(np.asarray(latents))
    assert [p.shape[1] for p in pieces] == [CHUNK] * 4 and len(traces) == 2
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full[0], atol=CHUNK_TOL)


def test_state_shapes(ours):
    """The decode state: one cache per causal conv with a time kernel of 3 (its input's last 2 frames), 1 frame for
    the encoder's time downsampling; independent of the chunk length."""
    state = ours.init_decode_state(ours.params, (1, CHUNK, 4, 3, TINY["z_dim"]))
    assert state.started is False
    assert state.caches["decoder.conv_in"].shape == (1, 2, 4, 3, TINY["z_dim"])
    assert state.caches["decoder.conv_out"].shape == (1, 2, HEIGHT, WIDTH, TINY["base_dim"])
    assert not any(k.startswith("encoder") for k in state.caches)
    longer = ours.init_decode_state(ours.params, (1, 5, 4, 3, TINY["z_dim"]))
    assert jax.tree.map(lambda x: x.shape, longer) == jax.tree.map(lambda x: x.shape, state)
    enc = ours.init_encode_state(ours.params, (1, 5, HEIGHT, WIDTH, 3))
    assert enc.caches["encoder.down_blocks.3.time_conv"].shape[1] == 1
    assert wan_vae.state_bytes(state) == sum(x.size * 4 for x in jax.tree.leaves(state))
    assert ours.latent_shape((FRAMES, HEIGHT, WIDTH, 3)) == (8, 4, 3, TINY["z_dim"])
    assert ours.temporal_factor == 4


def test_parameters_carry_logical_axis_names(ours):
    """Conv kernels name their channel axes (vae_in, vae_out), so parallel.state_shardings can place them."""
    from flax import nnx

    kernel = ours.params["decoder"]["conv_in"]["kernel"]
    assert isinstance(kernel, nnx.Variable)
    assert kernel.get_metadata()["out_sharding"] == (None, None, None, wan_vae.VAE_IN, wan_vae.VAE_OUT)


# ------------------------------------------------------------------------------------------------------ loader
def test_sharded_and_nested_folders_load_the_same(torch, reference, ours, tmp_path):
    """Shards listed by diffusion_pytorch_model.safetensors.index.json, and a pipeline root with the VAE in vae/,
    give the same parameters."""
    model, _ = reference
    model.save_pretrained(tmp_path / "root" / "vae", max_shard_size="20KB")
    assert os.path.isfile(tmp_path / "root" / "vae" / wan_vae.WEIGHTS_INDEX_FILE)
    sharded = load_wan_vae(str(tmp_path / "root"))
    for a, b in zip(jax.tree.leaves(ours.params), jax.tree.leaves(sharded.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_onto_a_mesh(reference, ours):
    """With a mesh and rules naming the VAE's channel axes, every parameter lands sharded by its logical names (here
    output channels over "tensor"), with the values of the plain load."""
    from streamdit_jax import parallel

    mesh = parallel.make_mesh(parallel.MeshConfig((("data", -1), ("tensor", 2))))
    rules = parallel.LOGICAL_RULES + ((wan_vae.VAE_OUT, "tensor"),)
    sharded = load_wan_vae(reference[1], mesh=mesh, rules=rules)
    kernel = sharded.params["decoder"]["conv_in"]["kernel"][...]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, None, None, None, "tensor")
    assert sharded.params["decoder"]["conv_out"]["bias"][...].sharding.is_fully_replicated  # 3 channels, 2 devices
    for a, b in zip(jax.tree.leaves(ours.params), jax.tree.leaves(sharded.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _edited_copy(directory, tmp_path, **fields):
    target = tmp_path / "edited"
    shutil.copytree(directory, target)
    with open(target / "config.json") as f:
        config = json.load(f)
    config.update(fields)
    with open(target / "config.json", "w") as f:
        json.dump(config, f)
    return str(target)


def test_weights_that_do_not_match_the_config(reference, tmp_path):
    with pytest.raises(ValueError, match=r"lacks the Wan VAE tensor 'decoder\.up_blocks\.0\.resnets\.2\."):
        load_wan_vae(_edited_copy(reference[1], tmp_path, num_res_blocks=2))


def test_missing_files(reference, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_wan_vae(str(tmp_path / "nowhere"))
    target = tmp_path / "no_weights"
    target.mkdir()
    shutil.copy(os.path.join(reference[1], "config.json"), target)
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model\.safetensors"):
        load_wan_vae(str(target))
    os.remove(target / "config.json")
    with pytest.raises(ValueError, match=r"config\.json.*does not exist"):
        load_wan_vae(str(target))


@pytest.mark.parametrize("fields, message", [
    (dict(is_residual=True), r"is_residual=True is Wan2\.2"),
    (dict(patch_size=2), r"patch_size=2 is Wan2\.2"),
    (dict(attn_scales=[0.5]), r"attn_scales=\[0\.5\]"),
    (dict(_class_name="AutoencoderKL"), r"_class_name='AutoencoderKL'"),
    (dict(scale_factor_temporal=8), r"scale_factor_temporal=8 disagrees"),
    (dict(latents_std=[1.0, 0.0, 1.0, 1.0]), r"latents_std=\[1\.0, 0\.0"),
    (dict(latents_mean=[0.0]), r"latents_mean has 1 entries, z_dim=4"),
    (dict(temperal_downsample=[True, True]), r"temperal_downsample=\[True, True\]"),
    (dict(num_res_blocks=0), r"num_res_blocks=0"),
])
def test_unsupported_config(fields, message):
    config = {**TINY, "_class_name": "AutoencoderKLWan", **fields}
    with pytest.raises(ValueError, match=message):
        WanVAEConfig.from_dict(config)


@pytest.fixture(scope="module")
def abstract():
    """The tiny VAE with abstract parameters: the input checks run before any computation."""
    cfg = WanVAEConfig(**TINY)
    return wan_vae.WanVideoAutoencoder(cfg, *wan_vae.abstract_wan_vae(cfg))


@pytest.mark.parametrize("shape, message", [
    ((1, 8, 32, 24, 3), r"T=8 frames"),
    ((1, 9, 32, 24, 4), r"4 channels"),
    ((1, 9, 30, 24, 3), r"30x24 is not a multiple"),
    ((9, 32, 24, 3), r"expected \[b, T, H, W, 3\]"),
])
def test_bad_video(abstract, shape, message):
    with pytest.raises(ValueError, match=message):
        abstract.encode(abstract.params, jnp.zeros(shape))


def test_bad_chunks(abstract):
    ae = abstract
    state = ae.init_encode_state(ae.params, (1, 5, 32, 24, 3))
    state, _ = jax.eval_shape(ae.encode_chunk, ae.params, state, jnp.zeros((1, 5, 32, 24, 3)))
    with pytest.raises(ValueError, match=r"T=5 frames; after a stream's first chunk"):
        ae.encode_chunk(ae.params, state, jnp.zeros((1, 5, 32, 24, 3)))
    with pytest.raises(ValueError, match=r"latents have 3 channels; this Wan VAE has z_dim=4"):
        ae.decode(ae.params, jnp.zeros((1, 2, 4, 3, 3)))
    decode_state = ae.init_decode_state(ae.params, (1, 2, 4, 3, 4))
    with pytest.raises(ValueError, match=r"made for chunks of another batch or frame size"):
        jax.eval_shape(ae.decode_chunk, ae.params, decode_state, jnp.zeros((1, 2, 4, 4, 4)))
    with pytest.raises(ValueError, match=r"no cache for 'decoder\.conv_in'"):
        jax.eval_shape(ae.decode_chunk, ae.params, StreamState(state.caches, True), jnp.zeros((1, 2, 4, 3, 4)))
    with pytest.raises(ValueError, match=r"T=6 frames"):
        ae.latent_shape((6, 32, 24, 3))
