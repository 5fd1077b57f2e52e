"""Chunked attention (models.attention.chunked_attention, attention_impl "chunked[:N]"): the XLA path's values and
gradients in blocks of queries; the attention_impl validation, the preset aliases and the FLOP count by arch."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from streamdit_jax.models import forward_flops, get_model_config
from streamdit_jax.models import dit, wan
from streamdit_jax.models.attention import attend, chunked_attention, query_blocks
from streamdit_jax.models.config import MODEL_CONFIGS, chunked_block

B, T, S, HEADS, DIM = 2, 37, 29, 3, 8  # 37 queries: prime, so no block count divides it (padding)


def inputs(seed=0, T=T):
    kq, kk, kv, km = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(kq, (B, T, HEADS, DIM))
    k = jax.random.normal(kk, (B, S, HEADS, DIM))
    v = jax.random.normal(kv, (B, S, HEADS, DIM))
    per_query = jax.random.bernoulli(km, 0.6, (B, 1, T, S)).at[..., 0].set(True)  # every query sees a key
    return q, k, v, per_query


MASKS = {"none": lambda m: None, "per query": lambda m: m, "keys only": lambda m: m[:, :, :1, :]}


@pytest.mark.parametrize("mask_kind", sorted(MASKS))
@pytest.mark.parametrize("length, block", [(37, 8), (36, 8), (37, 64)])  # 5 x 8 padded, 6 x 6 exact, 1 x 37
def test_chunked_attention_equals_xla_in_values_and_gradients(mask_kind, length, block):
    q, k, v, per_query = inputs(T=length)
    mask = MASKS[mask_kind](per_query)
    weights = jax.random.normal(jax.random.key(9), (B, length, HEADS, DIM))  # a loss that weighs every output

    def loss(fn):
        return lambda q, k, v: jnp.sum(fn(q, k, v) * weights)

    xla = lambda q, k, v: attend(q, k, v, mask=mask)
    chunked = lambda q, k, v: chunked_attention(q, k, v, mask, block)
    np.testing.assert_allclose(chunked(q, k, v), xla(q, k, v), atol=2e-6, rtol=1e-5)
    want = jax.grad(loss(xla), argnums=(0, 1, 2))(q, k, v)
    got = jax.jit(jax.grad(loss(chunked), argnums=(0, 1, 2)))(q, k, v)
    for g, w, name in zip(got, want, "qkv"):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5, err_msg=f"d loss / d {name}")


def test_attend_dispatches_chunked_implementations():
    q, k, v, mask = inputs(1)
    want = attend(q, k, v, mask=mask)
    for impl in ("chunked", "chunked:4", "chunked:1"):
        np.testing.assert_allclose(attend(q, k, v, mask=mask, implementation=impl), want, atol=2e-6, rtol=1e-5)


def test_query_blocks_cover_the_queries_in_blocks_no_larger_than_asked():
    assert query_blocks(24960, 1024) == (26, 960)  # Wan at 480x832: 26 blocks divide it, no padding
    assert query_blocks(37, 8) == (5, 8)  # prime: 5 blocks of 8, padded by 3
    assert query_blocks(7, 8) == (1, 7) and query_blocks(1, 1) == (1, 1)
    for length in range(1, 60):
        for block in (1, 3, 8, 16):
            count, size = query_blocks(length, block)
            assert size <= block and count * size >= length > (count - 1) * size
    with pytest.raises(ValueError):
        query_blocks(0, 8)


def test_chunked_attention_impl_is_validated_and_parsed():
    assert chunked_block("chunked") is None and chunked_block("chunked:512") == 512
    for ok in (None, "xla", "cudnn", "chunked", "chunked:64"):
        get_model_config("wan_tiny", attention_impl=ok)
    for bad in ("flash", "chunked:0", "chunked:", "chunked:x", "chunked512", 3):
        with pytest.raises(ValueError, match="attention_impl.*chunked:N"):
            get_model_config("wan_tiny", attention_impl=bad)


def test_wan_with_chunked_attention_equals_the_xla_path():
    from flax import nnx

    cfg = get_model_config("wan_tiny", attend_text_padding=False)  # cross-attention with a mask, chunked too
    model = wan.WanTransformer(cfg, rngs=nnx.Rngs(0))
    chunked = wan.WanTransformer(cfg.replace(attention_impl="chunked:5"), rngs=nnx.Rngs(0))
    keys = jax.random.split(jax.random.key(2), 3)
    x = jax.random.normal(keys[0], (2, 11, 2, 2, cfg.latent_channels))  # 11 x 1 x 1 tokens: no block count divides
    count, size = query_blocks(11, 5)
    assert count * size > 11  # so the queries are padded
    tau = jax.random.uniform(keys[1], (2, 11))
    text = jax.random.normal(keys[2], (2, 7, cfg.text.width))
    mask = jnp.asarray([[1] * 7, [1] * 3 + [0] * 4], jnp.int32)
    head = jax.random.normal(jax.random.key(5), (cfg.width, cfg.patch_dim))
    nnx.update(model, {"head": {"out": {"kernel": head}}})  # Wan's head starts at zero: give it an output
    nnx.update(chunked, {"head": {"out": {"kernel": head}}})
    np.testing.assert_allclose(chunked(x, tau, text, mask), model(x, tau, text, mask), atol=1e-5, rtol=1e-5)


def test_model_aliases_name_the_presets_and_unknown_names_list_the_valid_ones():
    assert get_model_config("wan2.1_1.3b") is MODEL_CONFIGS["wan_1_3b"]
    assert get_model_config("wan2.1_14b", remat=False) == MODEL_CONFIGS["wan_14b"].replace(remat=False)
    with pytest.raises(ValueError, match=r"'wan2\.1_3b' is unknown; valid: \[.*'wan_1_3b'.*\].*wan2\.1_14b"):
        get_model_config("wan2.1_3b")


def test_forward_flops_follows_the_architecture():
    wan_cfg, dit_cfg = get_model_config("wan2.1_1.3b"), get_model_config("tiny")
    latent = (16, 60, 104, 16)
    assert forward_flops(wan_cfg, latent) == wan.forward_flops(wan_cfg, latent) != dit.forward_flops(wan_cfg, latent)
    assert forward_flops(dit_cfg, (16, 8, 8, 4), batch=2) == dit.forward_flops(dit_cfg, (16, 8, 8, 4), batch=2)
    assert 1.7e14 < forward_flops(wan_cfg, latent) < 1.9e14  # 1.3B x 2 x 24,960 tokens + 30 layers of attention
