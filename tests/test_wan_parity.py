"""models.wan + models.wan_weights against diffusers' WanTransformer3DModel (PyTorch, float32, CPU) on a tiny random
model saved with save_pretrained and imported by ``wan_weights.import_wan`` (the library function of
experiments.import_weights), read back by ``restore.load_for_inference``:

* the velocity (ours = -Wan's prediction, timestep = 1000 (1 - tau)) for one timestep per sample and for per-frame
  timesteps (diffusers' per-token path, timestep [b, seq_len]); equal per-frame taus are the per-sample path;
* the text mask: Wan's convention (every position attended) and StreamDiT's (keys past the prompt masked);
* 3D RoPE: diffusers' tables, positions relative to the buffer (the largest temporal position is F - 1), a stream's
  buffer step that does not depend on how many chunks the stream has emitted;
* sharded files and the original Wan2.1 naming (norm2 / norm3 swapped) import to the same tensors;
* bad input named before anything is written.

Needs torch + diffusers (the ``hf`` extra); skips with the reason when they are missing.
"""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from streamdit_jax.models import wan, wan_weights
from streamdit_jax.models.factory import abstract_model
from streamdit_jax.partition import Partition
from streamdit_jax.restore import load_for_inference
from streamdit_jax.sampling.buffer import BufferState, make_buffer_step, model_denoise_fn

TOL = 1e-4
SCALE = 0.3  # every weight ~ N(0, 0.3^2), the scale_shift_tables included: far from any init, float32-conditioned
# 2 heads of 16 (RoPE split 8 / 4 / 4), latents of 3 frames x 4 x 6 -> a 3 x 2 x 3 token grid (F = W', so a per-frame
# modulation broadcast over the wrong token axis still runs, and must fail on values)
TINY = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
            text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2)
LATENT = (2, 3, 4, 6, 4)
TEXT_LEN = 7


@pytest.fixture(scope="module")
def reference(torch, tmp_path_factory):
    """(diffusers model in eval mode, its save_pretrained folder)."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    model = WanTransformer3DModel(**TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * SCALE)
    directory = str(tmp_path_factory.mktemp("wan_diffusers"))
    model.save_pretrained(directory)
    return model, directory


@pytest.fixture(scope="module")
def imported(reference, tmp_path_factory):
    """(TrainConfig, graphdef, params, output folder) of the import, float32 compute."""
    output = str(tmp_path_factory.mktemp("wan_import") / "ckpt")
    wan_weights.import_wan(reference[1], output, model_overrides=dict(dtype="float32"))
    return (*load_for_inference(output), output)


@pytest.fixture(scope="module")
def velocity(imported):
    """Jitted ``(params, x, tau, text, mask) -> velocity`` of a graphdef (default: the imported one)."""
    cache = {}

    def get(graphdef=None):
        graphdef = imported[1] if graphdef is None else graphdef
        if graphdef not in cache:
            cache[graphdef] = jax.jit(lambda p, x, tau, text, mask: nnx.merge(graphdef, p)(x, tau, text, mask))
        return cache[graphdef]

    return get


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(LATENT).astype(np.float32)
    text = rng.standard_normal((LATENT[0], TEXT_LEN, TINY["text_dim"])).astype(np.float32)
    return x, text


def _diffusers_velocity(torch, model, x, timestep, text):
    """-(Wan's noise - x0) channels-last: the velocity in our convention."""
    with torch.no_grad():
        out = model(torch.tensor(x).permute(0, 4, 1, 2, 3), torch.tensor(timestep), torch.tensor(text)).sample
    return -out.permute(0, 2, 3, 4, 1).numpy()


def _per_token(tau: np.ndarray) -> np.ndarray:
    """diffusers' per-token timesteps [b, F * H' * W']: every token of frame f at 1000 (1 - tau_f)."""
    tokens = (LATENT[2] // 2) * (LATENT[3] // 2)
    return np.repeat(1000.0 * (1.0 - tau), tokens, axis=1).astype(np.float32)


def _close(ours, ref, label):
    err = float(np.abs(np.asarray(ours) - ref).max())
    print(f"{label}: max abs error {err:.2e} (|ref| max {np.abs(ref).max():.2f})")
    assert err < TOL, f"{label}: differs from diffusers by {err}"


# ------------------------------------------------------------------------------------------------------ parity
def test_one_timestep_per_sample_matches_diffusers(torch, reference, imported, velocity, inputs):
    """Equal per-frame taus [b, F] against diffusers' per-sample path (timestep [b])."""
    x, text = inputs
    tau = np.array([0.3, 0.85], np.float32)
    cfg, _, params, _ = imported
    args = (x, np.repeat(tau[:, None], LATENT[1], 1), text, np.ones(text.shape[:2]))
    ref = _diffusers_velocity(torch, reference[0], x, 1000.0 * (1.0 - tau), text)
    _close(velocity()(params, *args), ref, "per-sample timestep")
    bf16 = np.asarray(velocity(abstract_model(cfg.model.replace(dtype="bfloat16"))[0])(params, *args))
    cos = np.sum(bf16 * ref) / (np.linalg.norm(bf16) * np.linalg.norm(ref))
    print(f"bfloat16 compute: max abs error {np.abs(bf16 - ref).max():.3f}, cosine {cos:.5f}")
    assert cos > 0.999, f"bfloat16 compute is off: cosine {cos}"


def test_per_frame_timesteps_match_diffusers_per_token_path(torch, reference, imported, velocity, inputs):
    """tau [b, F] against diffusers' per-token path (timestep [b, seq_len], each frame's tokens sharing it); on
    diffusers' side equal per-token timesteps are its per-sample path, and distinct ones change the output."""
    model, _ = reference
    x, text = inputs
    tau = np.array([[0.1, 0.5, 0.9], [0.7, 0.2, 0.4]], np.float32)
    ours = velocity()(imported[2], x, tau, text, np.ones(text.shape[:2]))
    ref = _diffusers_velocity(torch, model, x, _per_token(tau), text)
    _close(ours, ref, "per-frame timesteps")
    equal = np.array([[0.3] * 3, [0.85] * 3], np.float32)
    _close(_diffusers_velocity(torch, model, x, _per_token(equal), text),
           _diffusers_velocity(torch, model, x, 1000.0 * (1.0 - equal[:, 0]), text), "diffusers per-token = per-sample")
    assert np.abs(ref - _diffusers_velocity(torch, model, x, _per_token(equal), text)).max() > 0.1


def test_text_mask_wan_convention_and_streamdit_masking(torch, reference, imported, velocity, inputs):
    """attend_text_padding=True (the import's default, Wan2.1's): the mask is ignored, every position attended.
    False (StreamDiT's rule): equal to diffusers reading each prompt's positions only."""
    model, _ = reference
    cfg, _, params, _ = imported
    x, text = inputs
    lengths = [3, 7]
    mask = (np.arange(TEXT_LEN)[None] < np.array(lengths)[:, None]).astype(np.int32)
    text = np.where(mask[..., None].astype(bool), text, 0.0).astype(np.float32)  # zero past the prompt, as Wan
    tau = np.array([[0.2, 0.6, 0.9], [0.5, 0.5, 0.1]], np.float32)
    assert cfg.model.attend_text_padding
    _close(velocity()(params, x, tau, text, mask), _diffusers_velocity(torch, model, x, _per_token(tau), text),
           "attend_text_padding=True, partial mask")
    masked_def, _ = abstract_model(cfg.model.replace(attend_text_padding=False))
    ours = np.asarray(velocity(masked_def)(params, x, tau, text, mask))
    for i, n in enumerate(lengths):
        ref = _diffusers_velocity(torch, model, x[i:i + 1], _per_token(tau[i:i + 1]), text[i:i + 1, :n])
        _close(ours[i:i + 1], ref, f"masked text, prompt of {n}")
    assert np.abs(ours[0] - np.asarray(velocity()(params, x, tau, text, mask))[0]).max() > 1e-3


# -------------------------------------------------------------------------------------------------------- RoPE
def test_rope_tables_match_diffusers_and_positions_are_relative_to_the_buffer(torch, reference):
    """Our cos / sin equal diffusers' (interleaved pairs: its tables repeat each angle twice); the temporal position
    of the input's frame f is f, so the largest is F - 1 for any F, and a frame's angles do not depend on F."""
    model, _ = reference
    assert wan.rope_axis_dims(16) == (8, 4, 4) and wan.rope_axis_dims(128) == (44, 42, 42)
    grid = (LATENT[1], LATENT[2] // 2, LATENT[3] // 2)
    cos, sin = wan.rope_tables(grid, 16)
    ref_cos, ref_sin = model.rope(torch.zeros((1, 4) + LATENT[1:4]))
    np.testing.assert_allclose(cos.reshape(-1, 8), ref_cos[0, :, 0, 0::2].numpy(), atol=1e-6)
    np.testing.assert_allclose(sin.reshape(-1, 8), ref_sin[0, :, 0, 1::2].numpy(), atol=1e-6)
    for frames in (1, 2, 3, 16, 21, 64):
        positions = wan.token_positions((frames, 2, 3))
        assert positions[..., 0].min() == 0 and positions[..., 0].max() == frames - 1
    long_cos, _ = wan.rope_tables((16, 2, 3), 16)
    np.testing.assert_array_equal(long_cos[:3], cos)


def test_stream_step_does_not_depend_on_frames_already_emitted(imported, inputs):
    """The jitted buffer step (arch "wan") from the same buffer after 0 and after 10^6 macro steps: the same frames
    come out (the model takes no absolute position; its RoPE starts at the buffer's first frame)."""
    cfg, graphdef, params, _ = imported
    x, text = inputs
    partition = Partition.from_buffer(LATENT[1], 1, 2)  # B = 3 frames, chunks of 1, 2 micro steps each
    step = make_buffer_step(model_denoise_fn(graphdef), partition, donate=False)
    cond = (jnp.asarray(text[:1]), jnp.ones((1, TEXT_LEN), jnp.int32))
    outputs = []
    for done in (0, 10 ** 6):
        state = BufferState(jnp.asarray(x[:1, :partition.B]), jnp.asarray(partition.progress(0), jnp.float32),
                            jnp.asarray(done, jnp.int32), jax.random.key_data(jax.random.key(0)))
        new, chunk = step(params, state, cond)
        outputs.append((np.asarray(new.latents), np.asarray(chunk)))
    assert np.isfinite(outputs[0][1]).all()
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])


# ------------------------------------------------------------------------------------------------------ import
def _to_original(name: str) -> str:
    """diffusers' tensor name -> the original Wan2.1 release's (the inverse of diffusers' converter)."""
    renames = [("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
               ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
               ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
               ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
               ("condition_embedder.time_proj", "time_projection.1"), ("attn1", "self_attn"),
               ("attn2", "cross_attn"), (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."),
               (".to_v.", ".v."), ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"), ("proj_out", "head.head"),
               ("norm2", "norm3")]
    for a, b in renames:
        name = name.replace(a, b)
    if name == "scale_shift_table":
        return "head.modulation"
    return name.replace("scale_shift_table", "modulation")


def _read(path):
    from safetensors.numpy import load_file
    return load_file(path)


def test_sharded_and_original_naming_import_the_same_tensors(torch, reference, imported, tmp_path):
    """The same weights as sharded diffusers files, and in the original release's names (its cross-attention norm is
    norm3, diffusers' norm2; prefixed model.diffusion_model.; WanModel config) import to identical tensors."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    model, directory = reference
    expected = _read(os.path.join(imported[3], "model.safetensors"))
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="20KB")
    assert os.path.isfile(sharded / wan_weights.WEIGHTS_INDEX_FILE)
    tensors = _read(os.path.join(directory, wan_weights.WEIGHTS_FILE))
    original = {_to_original(k): v for k, v in tensors.items()}
    assert set(convert_wan_transformer_to_diffusers(dict(original))) == set(tensors)  # diffusers agrees
    folder = tmp_path / "original"
    folder.mkdir()
    from safetensors.numpy import save_file
    save_file({"model.diffusion_model." + k: v for k, v in original.items()}, folder / wan_weights.WEIGHTS_FILE)
    (folder / "config.json").write_text(json.dumps(dict(
        _class_name="WanModel", model_type="t2v", dim=32, num_heads=2, ffn_dim=64, freq_dim=32, in_dim=4, out_dim=4,
        num_layers=2, text_dim=32, eps=1e-6, text_len=512)))
    for source, naming in ((sharded, "diffusers"), (folder, "original")):
        info = wan_weights.import_wan(str(source), str(tmp_path / f"out_{naming}"),
                                      model_overrides=dict(dtype="float32"))
        assert info["naming"] == naming
        got = _read(str(tmp_path / f"out_{naming}" / "model.safetensors"))
        assert set(got) == set(expected)
        for k in expected:
            np.testing.assert_array_equal(got[k], expected[k], err_msg=f"{naming}: {k}")
    cfg = json.load(open(os.path.join(imported[3], "config.json")))["model"]
    assert cfg["arch"] == "wan" and cfg["width"] == 32 and cfg["ffn_dim"] == 64 and cfg["depth"] == 2


def test_bad_inputs_are_named_before_anything_is_written(reference, tmp_path):
    _, directory = reference
    out = str(tmp_path / "out")

    def fails(source, match, output=out):
        with pytest.raises(ValueError, match=match):
            wan_weights.import_wan(str(source), output)
        assert not os.path.exists(output)

    fails(tmp_path / "nowhere", "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(empty, "config.json' does not exist")
    shutil.copy(os.path.join(directory, "config.json"), empty)
    fails(empty, "no Wan transformer weights")
    tensors = _read(os.path.join(directory, wan_weights.WEIGHTS_FILE))
    from safetensors.numpy import save_file

    def variant(name, drop=(), add=None, config=None):
        folder = tmp_path / name
        folder.mkdir()
        save_file({**{k: v for k, v in tensors.items() if k not in drop}, **(add or {})},
                  folder / wan_weights.WEIGHTS_FILE)
        cfg = json.load(open(os.path.join(directory, "config.json")))
        (folder / "config.json").write_text(json.dumps({**cfg, **(config or {})}))
        return folder

    fails(variant("missing", drop=["blocks.1.attn2.norm_k.weight"]), r"lacks .*'blocks\.1\.attn2\.norm_k\.weight'")
    fails(variant("extra", add={"blocks.2.attn1.to_q.bias": np.zeros(32, np.float32)}),
          r"does not have: \['blocks\.2\.attn1\.to_q\.bias'\]")
    fails(variant("shape", config={"ffn_dim": 48}), r"'blocks\.0\.ffn\.net\.0\.proj\.weight' has shape \(64, 32\)")
    fails(variant("i2v", config={"image_dim": 1280}), "image-conditioned")
    fails(directory, "overlaps", output=os.path.join(directory, "inside"))
