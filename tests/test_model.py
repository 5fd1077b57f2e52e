"""StreamDiT model: window attention, per-frame conditioning, sharding, parameter count."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from helpers import randomize, tiny_model
from streamdit_jax import parallel
from streamdit_jax.models import ConditionedModel, get_model_config
from streamdit_jax.models.attention import WindowSelfAttention, apply_rope, rope_3d
from streamdit_jax.models.dit import DiTBlock, TimeEmbedding
from streamdit_jax.flow import gaussian_noise

GRID = (4, 4, 4)
WIDTH, HEADS = 32, 4


def attention_layer(window, shifted, seed=0):
    return randomize(WindowSelfAttention(WIDTH, HEADS, window, shifted=shifted, rngs=nnx.Rngs(seed)), seed)


def tokens(seed=1):
    return gaussian_noise(jax.random.key(seed), (2,) + GRID + (WIDTH,))


def rope():
    return tuple(jnp.asarray(t) for t in rope_3d(GRID, WIDTH // HEADS))


def reference_full_attention(layer, x, rope):
    """Plain softmax attention over all tokens, written independently of the windowing code."""
    heads = lambda t: t.reshape(t.shape[:-1] + (HEADS, WIDTH // HEADS))
    q = apply_rope(layer.q_norm(heads(layer.q(x))), *rope).reshape(2, -1, HEADS, WIDTH // HEADS)
    k = apply_rope(layer.k_norm(heads(layer.k(x))), *rope).reshape(2, -1, HEADS, WIDTH // HEADS)
    v = heads(layer.v(x)).reshape(2, -1, HEADS, WIDTH // HEADS)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(WIDTH // HEADS)
    o = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
    return layer.out(o.reshape(2, *GRID, WIDTH))


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("window", [(0, 0, 0), GRID])
def test_window_attention_equals_full_attention_when_the_window_is_the_grid(window, shifted):
    layer, x = attention_layer(window, shifted), tokens()
    np.testing.assert_allclose(layer(x, rope()), reference_full_attention(layer, x, rope()), atol=1e-4, rtol=1e-4)


def test_unshifted_window_attention_is_local_to_its_window():
    layer, x = attention_layer((2, 2, 2), shifted=False), tokens()
    y0 = layer(x, rope())
    y1 = layer(x.at[:, 3, 3, 3].add(5.0), rope())  # a token of the last window
    changed = np.abs(np.asarray(y1 - y0)).max(axis=(0, -1)) > 1e-6  # [F, H, W]
    expected = np.zeros(GRID, bool)
    expected[2:, 2:, 2:] = True  # exactly the window holding the perturbed token
    np.testing.assert_array_equal(changed, expected)


def test_shifted_windows_differ_from_unshifted_and_wrap_cyclically():
    plain, shifted = attention_layer((2, 2, 2), False), attention_layer((2, 2, 2), True)
    x = tokens()
    assert np.abs(np.asarray(plain(x, rope()) - shifted(x, rope()))).max() > 1e-3
    # shifted by one token per axis with wrap-around, the window of token (3,3,3) also holds token (0,0,0)
    y0, y1 = shifted(x, rope()), shifted(x.at[:, 3, 3, 3].add(5.0), rope())
    changed = np.abs(np.asarray(y1 - y0)).max(axis=(0, -1)) > 1e-6
    assert changed[0, 0, 0] and changed[3, 3, 3] and not changed[1, 1, 1]


def test_changing_one_frames_tau_changes_only_that_frames_modulation():
    cfg = get_model_config("tiny")
    time_embed = randomize(TimeEmbedding(cfg, rngs=nnx.Rngs(0)))
    block = randomize(DiTBlock(cfg, shifted=False, rngs=nnx.Rngs(1)))  # random adaLN weights (not zero-init)
    tau = jnp.linspace(0.1, 0.9, 8)[None]
    m0 = block.modulation(time_embed(tau))
    m1 = block.modulation(time_embed(tau.at[0, 5].set(0.33)))
    diff = np.abs(np.asarray(m1 - m0)).max(axis=(0, 2, 3))  # per frame
    assert diff[5] > 1e-3
    assert np.all(np.delete(diff, 5) == 0)


def test_model_forward_has_latent_shape_and_rejects_bad_shapes():
    model = tiny_model()
    x = gaussian_noise(jax.random.key(0), (2, 8, 8, 8, 4))
    text, mask = model.encode_text(jnp.asarray(model.tokenize(["a red circle", ""])))
    v = model(x, jnp.full((2, 8), 0.5), text, mask)
    assert v.shape == x.shape and np.all(np.isfinite(np.asarray(v)))
    with pytest.raises(ValueError, match="tau must be per frame"):
        model(x, jnp.full((2, 7), 0.5), text, mask)
    with pytest.raises(ValueError, match="does not tile the token grid"):
        model(x[:, :6], jnp.full((2, 6), 0.5), text, mask)  # window 4 frames, grid 6 frames


def test_text_encoder_distinguishes_prompts_and_masks_padding():
    model = tiny_model()
    tok = model.tokenize(["a red circle moving left", "a blue square moving up", ""])
    assert tok[2, 0] == 1 and np.all(tok[2, 1:] == 0)  # the null prompt is BOS only
    emb, mask = model.encode_text(jnp.asarray(tok))
    assert np.asarray(mask).sum(1).tolist() == [25, 24, 1]
    assert np.abs(np.asarray(emb[0] - emb[1])).max() > 1e-3


@pytest.mark.parametrize("third_axis", ["tensor", "context"])
def test_model_sharded_on_a_2x2x2_mesh_matches_one_device(third_axis):
    """data x fsdp x tensor (tensor parallel weights) and data x fsdp x context (frames split across devices)."""
    model = tiny_model(seed=3)
    graphdef, state = nnx.split(model)
    x = gaussian_noise(jax.random.key(0), (4, 8, 8, 8, 4))
    tau = jax.random.uniform(jax.random.key(1), (4, 8))
    tokens_ = jnp.asarray(model.tokenize(["a", "bb", "ccc", ""]))

    def forward(state, x, tau, tokens_):
        m = nnx.merge(graphdef, state)
        return m(x, tau, *m.encode_text(tokens_))

    single = np.asarray(jax.jit(forward)(state, x, tau, tokens_))
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 2), ("fsdp", 2), (third_axis, 2))))
    with parallel.activate(mesh):
        shardings = parallel.state_shardings(state, mesh)
        sharded_state = jax.device_put(state, shardings)
        xs = jax.device_put(x, parallel.batch_sharding(mesh, 5))
        out = jax.jit(forward)(sharded_state, xs, tau, tokens_)
    np.testing.assert_allclose(np.asarray(out), single, atol=2e-4, rtol=2e-4)
    # the parameters really are split per the rules: MLP kernels over fsdp (x tensor), attention over heads
    tensor = "tensor" if third_axis == "tensor" else None
    fc1 = sharded_state["denoiser"]["blocks"]["plain"]["fc1"]["kernel"][...]
    assert fc1.sharding.spec == P(None, "fsdp", tensor)
    assert fc1.addressable_shards[0].data.shape == (1, 48 // 2, 192 // (2 if tensor else 1))
    q = sharded_state["denoiser"]["blocks"]["shifted"]["attn"]["q"]["kernel"][...]
    assert q.sharding.spec == P(None, "fsdp", tensor)
    assert out.sharding.spec[0] == ("data", "fsdp")


def test_context_parallel_activations_are_split_along_frames():
    model = tiny_model(seed=4)
    graphdef, state = nnx.split(model)
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 2), ("fsdp", 2), ("context", 2))))

    def tokens_after_embedding(state, x):
        from streamdit_jax.models.dit import TOKENS
        m = nnx.merge(graphdef, state)
        return parallel.constrain(m.denoiser.patch_embed(m.denoiser.patchify(x)), TOKENS)

    with parallel.activate(mesh):
        h = jax.jit(tokens_after_embedding)(state, jnp.ones((4, 8, 8, 8, 4)))
    assert h.sharding.spec[:2] == (("data", "fsdp"), "context")
    assert h.addressable_shards[0].data.shape == (1, 4, 4, 4, 48)  # 8 frames -> 4 per context shard


def test_4b_config_has_4_billion_parameters_by_eval_shape():
    abstract = nnx.eval_shape(lambda: ConditionedModel(get_model_config("streamdit_4b"), rngs=nnx.Rngs(0)))
    n = parallel.num_params(nnx.state(abstract, nnx.Param))
    assert 3.7e9 <= n <= 4.3e9, n
    grid = get_model_config("streamdit_4b").token_grid((16, 64, 64, 8))
    assert grid == (16, 32, 32)


def test_remat_changes_neither_outputs_nor_gradients():
    plain, remat = tiny_model(seed=5), tiny_model(seed=5, remat=True)
    x = gaussian_noise(jax.random.key(0), (1, 8, 8, 8, 4))
    tau = jnp.full((1, 8), 0.3)
    text, mask = plain.encode_text(jnp.asarray(plain.tokenize(["a green square"])))

    def loss(model):
        return jnp.mean(model(x, tau, text, mask) ** 2)

    l0, g0 = nnx.value_and_grad(loss)(plain)
    l1, g1 = nnx.value_and_grad(loss)(remat)
    np.testing.assert_allclose(float(l0), float(l1), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-4)


def test_a_width_narrower_than_a_patch_is_rejected_because_the_velocity_head_would_be_rank_deficient():
    with pytest.raises(ValueError, match=r"width=128 .* = 192"):
        get_model_config("tiny", latent_channels=48, width=128, num_heads=4)
    assert get_model_config("tiny", latent_channels=48, width=192, num_heads=4).patch_dim == 192


def test_pooled_text_conditioning_feeds_every_frames_adaln_and_ignores_padding():
    model = randomize(tiny_model(seed=2, pooled_text=True), seed=3)
    assert "text_pool" in nnx.to_pure_dict(nnx.state(model))["denoiser"]
    assert "text_pool" not in nnx.to_pure_dict(nnx.state(tiny_model(seed=2)))["denoiser"]  # the paper's configs: off
    x = gaussian_noise(jax.random.key(0), (1, 8, 8, 8, 4))
    tau = jnp.full((1, 8), 0.3)
    text, mask = model.encode_text(jnp.asarray(model.tokenize(["a red circle"])))
    v = model(x, tau, text, mask)
    garbage = text.at[:, int(mask.sum()):].set(100.0)  # padded positions never count
    np.testing.assert_allclose(np.asarray(model(x, tau, garbage, mask)), np.asarray(v), rtol=1e-5, atol=1e-5)
    model.denoiser.text_pool.kernel[...] = 0.0 * model.denoiser.text_pool.kernel[...]
    model.denoiser.text_pool.bias[...] = 0.0 * model.denoiser.text_pool.bias[...]
    assert not np.allclose(np.asarray(model(x, tau, text, mask)), np.asarray(v), atol=1e-4)


def test_with_one_frame_windows_changing_one_frames_tau_changes_only_that_frames_velocity():
    """Per-frame adaLN through the whole DiT (Sec. 4.1): with an attention window of ONE frame no frame sees
    another, so frame 5's tau must reach frame 5's velocity and nothing else (a buffer-wide time embedding, e.g.
    the frames' mean, would move every frame)."""
    model = tiny_model(seed=4, window=(1, 2, 2))
    x = gaussian_noise(jax.random.key(0), (1, 8, 8, 8, 4))
    tau = jnp.linspace(0.1, 0.9, 8)[None]
    text, mask = model.encode_text(jnp.asarray(model.tokenize(["a red circle moving left"])))
    graphdef, params = nnx.split(model)
    velocity = jax.jit(lambda x, tau: nnx.merge(graphdef, params)(x, tau, text, mask))
    per_frame = lambda v1, v0: np.abs(np.asarray(v1 - v0)).max(axis=(0, 2, 3, 4))  # [F]
    v0 = velocity(x, tau)
    scale = float(np.abs(np.asarray(v0)).max())
    # guard: the windows really isolate the frames (another frame's latents reach only that frame)
    moved = per_frame(velocity(x.at[:, 2].add(1.0), tau), v0)
    assert moved[2] > 1e-2 * scale and np.all(np.delete(moved, 2) < 1e-5 * scale), f"frames not isolated: {moved}"
    diff = per_frame(velocity(x, tau.at[0, 5].set(0.33)), v0)
    assert diff[5] > 1e-2 * scale, f"frame 5's tau did not reach its own velocity: {diff}"
    assert np.all(np.delete(diff, 5) < 1e-5 * scale), f"frame 5's tau moved other frames' velocity: {diff}"
