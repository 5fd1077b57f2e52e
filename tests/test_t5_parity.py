"""models.t5 against transformers' PyTorch T5 family on tiny random models saved by transformers: T5 v1.1 (gated-GELU,
T5EncoderModel), the original T5 (ReLU, a whole T5ForConditionalGeneration, sharded files), umT5 (UMT5EncoderModel,
sharded files) and a ByT5-style model (vocabulary 384) with the byte tokenizer; the relative-position buckets; the
tokenizers (tokenizer.json, spiece.model, bytes) against transformers' T5 and ByT5 tokenizers; the loader's errors.

The reference tests need torch + transformers (the ``hf`` extra) and skip with the reason when they are missing; the
loader-error tests need neither.
"""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from streamdit_jax import parallel
from streamdit_jax.models import t5
from streamdit_jax.models.hf_checkpoint import get_leaf, masked_states
from streamdit_jax.models.t5 import T5Config, T5TextEncoder, hf_names, load_t5, load_t5_tokenizer

TOL = 1e-5
# Every weight ~ N(0, 0.3^2): far from the identity-like init, yet float32-conditioned (at 0.5, torch's own float32
# and float64 runs differ by 1e-5). Non-default eps, buckets and max distance catch a hard-coded one; d_kv * heads
# differs from d_model; 20 positions pass max_distance 12, so every bucket kind is used.
SCALE = 0.3
TINY = dict(d_model=32, d_kv=6, d_ff=37, num_layers=3, num_heads=4, relative_attention_num_buckets=8,
            relative_attention_max_distance=12, layer_norm_epsilon=1e-2, dropout_rate=0.0)
LENGTHS = [20, 13, 1, 7]  # full, padded, EOS only, padded
# variant: (config class, model class, config fields, save_pretrained arguments)
VARIANTS = {
    "t5_v1_1": ("T5Config", "T5EncoderModel", dict(vocab_size=99, feed_forward_proj="gated-gelu"), {}),
    "t5_relu": ("T5Config", "T5ForConditionalGeneration", dict(vocab_size=99, feed_forward_proj="relu"),
                {"max_shard_size": "20KB"}),
    "umt5": ("UMT5Config", "UMT5EncoderModel", dict(vocab_size=99), {"max_shard_size": "20KB"}),
    "byt5": ("T5Config", "T5EncoderModel", dict(vocab_size=384, feed_forward_proj="gated-gelu"), {}),
}
PROMPTS = ["a red circle moving left", "a crimson ball drifting left", "",
           "the blue square on the left then the red circle moving left on the blue square"]


@pytest.fixture(scope="module")
def torch_mods():
    """(torch, transformers) on 2 threads, or a skip naming what to install."""
    mods = tuple(pytest.importorskip(name, reason=f"PyTorch reference: pip install {name} (the hf extra)")
                 for name in ("torch", "transformers"))
    mods[0].set_num_threads(2)
    return mods


@pytest.fixture(scope="module")
def saved(torch_mods, tmp_path_factory):
    """variant -> (transformers model in eval mode, its save_pretrained directory), built on first use."""
    torch, transformers = torch_mods
    cache = {}

    def get(variant):
        if variant not in cache:
            config_cls, model_cls, fields, save = VARIANTS[variant]
            torch.manual_seed(len(cache))
            model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**TINY, **fields)).eval()
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn_like(p) * SCALE)
            directory = tmp_path_factory.mktemp(variant)
            model.save_pretrained(directory, **save)
            cache[variant] = model, str(directory)
        return cache[variant]

    return get


def _reference(torch, model, ids, mask):
    encoder = model.get_encoder() if hasattr(model, "get_encoder") else model
    with torch.no_grad():
        out = encoder(input_ids=torch.tensor(np.asarray(ids), dtype=torch.long),
                      attention_mask=torch.tensor(np.asarray(mask), dtype=torch.long))
    return out.last_hidden_state.float().numpy()


def _batch(vocab_size):
    rng = np.random.default_rng(0)
    ids = np.zeros((len(LENGTHS), max(LENGTHS)), np.int32)
    for i, n in enumerate(LENGTHS):
        ids[i, :n] = rng.integers(3, vocab_size, n)
        ids[i, n - 1] = 1  # EOS
    return ids, (ids != 0).astype(np.int32)


def _check(ours, ours16, ref, mask, label):
    """float32 within TOL on the prompts' positions, exact zeros past them; bf16 reported and loosely bounded."""
    keep = np.asarray(mask).astype(bool)
    ours, ours16 = np.asarray(ours), np.asarray(ours16)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert not ours[~keep].any() and not ours16[~keep].any(), "positions past the prompt must be exactly zero"
    err = float(np.abs(ours - ref)[keep].max())
    err16 = float(np.abs(ours16 - ref)[keep].max())
    cos = np.sum(ours16 * ref, -1) / (np.linalg.norm(ours16, axis=-1) * np.linalg.norm(ref, axis=-1) + 1e-12)
    print(f"{label}: float32 max abs error {err:.2e}; bfloat16 max abs error {err16:.3f}, min cosine "
          f"{cos[keep].min():.4f} (|ref| max {np.abs(ref).max():.2f})")
    assert err < TOL, f"{label}: float32 hidden states differ from transformers by {err}"
    assert err16 < 0.25 * np.abs(ref).max() and cos[keep].min() > 0.97, f"{label}: bfloat16 is off by {err16}"


# ------------------------------------------------------------------------------------------------------ parity
def test_relative_position_bucket_parity(torch_mods):
    """Bucket of every (query, key) pair up to 600 positions (Wan2.1 reads 512), equal to transformers' T5 and umT5
    functions, for the default 32 / 128 and other bucket counts and distances (odd ones included; at 18 / 128 the
    float32 rounding of the logarithm matters)."""
    torch, transformers = torch_mods
    from transformers.models.t5.modeling_t5 import T5Attention
    from transformers.models.umt5.modeling_umt5 import UMT5Attention
    length = 600
    relative = torch.arange(length)[None, :] - torch.arange(length)[:, None]
    for buckets, distance in [(32, 128), (8, 12), (64, 256), (16, 20), (10, 50), (33, 100), (4, 2), (18, 128)]:
        ours = t5.relative_position_buckets(length, buckets, distance)
        ref = T5Attention._relative_position_bucket(relative, bidirectional=True, num_buckets=buckets,
                                                    max_distance=distance).numpy()
        np.testing.assert_array_equal(ours, ref, err_msg=f"{buckets} buckets, max distance {distance}")
    umt5 = UMT5Attention(transformers.UMT5Config(**{**TINY, "relative_attention_num_buckets": 32,
                                                    "relative_attention_max_distance": 128}))
    np.testing.assert_array_equal(t5.relative_position_buckets(length, 32, 128),
                                  umt5._relative_position_bucket(relative).numpy())


@pytest.mark.parametrize("variant", ["t5_v1_1", "t5_relu", "umt5"])
def test_encoder_parity(torch_mods, saved, variant):
    """Last hidden states of a padded batch of different lengths (the encoder with the attention mask, then zeros past
    each prompt): T5 v1.1 from one model.safetensors, the original T5 from a sharded T5ForConditionalGeneration
    (decoder ignored), umT5 from shards."""
    torch, _ = torch_mods
    model, directory = saved(variant)
    sharded = bool(VARIANTS[variant][3])
    assert os.path.isfile(os.path.join(directory, "model.safetensors.index.json")) == sharded
    cfg, graphdef, params = load_t5(directory)
    assert cfg.model_type == ("umt5" if variant == "umt5" else "t5") and cfg.is_gated == (variant != "t5_relu")
    assert (cfg.layer_norm_epsilon, cfg.relative_attention_num_buckets, cfg.d_kv) == (1e-2, 8, 6)
    ids, mask = _batch(cfg.vocab_size)
    run = jax.jit(lambda g, p, t: masked_states(g, p, t, cfg.pad_token_id), static_argnums=0)
    ours, our_mask = run(graphdef, params, jnp.asarray(ids))
    np.testing.assert_array_equal(np.asarray(our_mask), mask)
    cfg16, graphdef16, params16 = load_t5(directory, dtype=jnp.bfloat16)
    assert jax.tree.leaves(params16)[0].dtype == jnp.bfloat16
    ours16 = run(graphdef16, params16, jnp.asarray(ids))[0]
    _check(ours, ours16, _reference(torch, model, ids, mask), mask, variant)


def test_umt5_tokenizer_and_encoder_parity(torch_mods, saved, tmp_path):
    """umT5 with a tokenizer.json (a tiny Unigram model, as Hugging Face's T5 tokenizers): ids and mask equal
    transformers' T5Tokenizer with padding to max_len and truncation (the tokenizers library's pieces, then EOS,
    then pad), and ``T5TextEncoder`` equals UMT5EncoderModel on them, with zeros past each prompt; also on a mesh."""
    torch, transformers = torch_mods
    from tokenizers import processors
    from tiny_wan import unigram_tokenizer
    model, directory = saved("umt5")
    tok, pieces = unigram_tokenizer(sorted(set(" ".join(PROMPTS).split())))
    assert len(pieces) < 99
    prompts = PROMPTS + ["Unknown Words, and   spaces"]
    plain = [tok.encode(p).ids for p in prompts]
    with_tokenizer = tmp_path / "umt5"
    shutil.copytree(directory, with_tokenizer)
    # a file without a post-processor, then one with "$A </s>" as Hugging Face's T5 files: EOS once either way
    for post_processor in (False, True):
        if post_processor:
            tok.post_processor = processors.TemplateProcessing(single=["$A", "</s>"], special_tokens=[("</s>", 1)])
        tok.save(str(with_tokenizer / "tokenizer.json"))
        hf = transformers.T5Tokenizer.from_pretrained(str(with_tokenizer))
        for max_len in (16, 5):
            ours = load_t5_tokenizer(str(with_tokenizer), max_len)
            ids, mask = ours(prompts)
            ref = hf(prompts, padding="max_length", truncation=True, max_length=max_len, return_tensors="np")
            where = f"max_len={max_len}, post-processor in the file: {post_processor}"
            np.testing.assert_array_equal(ids, ref["input_ids"], err_msg=where)
            np.testing.assert_array_equal(mask, ref["attention_mask"], err_msg=where)
            for row, content in zip(ids, plain):  # the library's pieces, one EOS, pad
                kept = content[: max_len - 1] + [1]
                assert row.tolist() == kept + [0] * (max_len - len(kept)), where

    encoder = T5TextEncoder.from_directory(str(with_tokenizer), max_len=16)
    assert (encoder.name, encoder.width, encoder.trainable) == ("umt5", 32, False)
    ids = encoder.tokenize(PROMPTS)
    assert ids.dtype == np.int32 and ids[2].tolist() == [1] + [0] * 15  # "" is EOS alone
    states, mask = encoder(PROMPTS)
    ref = _reference(torch, model, ids, ids != 0)
    keep = np.asarray(mask).astype(bool)
    assert not np.asarray(states)[~keep].any()
    err = float(np.abs(np.asarray(states) - ref)[keep].max())
    print(f"umT5 T5TextEncoder float32 vs transformers: max abs error {err:.2e}")
    assert err < TOL
    assert encoder.truncation_message(PROMPTS[0]) is None
    long = PROMPTS[3]
    msg = encoder.truncation_message(long)
    kept = encoder.tokenizer.kept_text(long)
    assert msg and repr(long) in msg and "only 16 tokens" in msg and "EOS included" in msg and repr(kept) in msg
    np.testing.assert_array_equal(encoder.tokenize([kept])[0], ids[3])  # what is kept is what the model reads

    mesh = parallel.make_mesh(parallel.MeshConfig((("fsdp", 2), ("tensor", 2))), jax.devices()[:4])
    on_mesh = T5TextEncoder.from_directory(str(with_tokenizer), max_len=16, mesh=mesh)
    q = on_mesh.params["layers"][1]["q"]["kernel"]
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor") and len(q.sharding.device_set) == 4
    np.testing.assert_allclose(np.asarray(on_mesh(PROMPTS)[0]), np.asarray(states), atol=TOL)


def test_byt5_tokenizer_and_encoder_parity(torch_mods, saved, tmp_path):
    """A ByT5-style model (vocabulary 384, no tokenizer file): ids and mask equal transformers' ByT5Tokenizer (bytes
    + 3, EOS 1, pad 0, truncation keeping EOS), and ``T5TextEncoder`` equals T5EncoderModel on them."""
    torch, transformers = torch_mods
    model, directory = saved("byt5")
    hf = transformers.ByT5Tokenizer()
    prompts = PROMPTS + ["Ünïcödé café, 東京 — 123!?", "x"]
    for max_len in (24, 6, 1):
        ours = t5.ByteTokenizer(max_len, pad_id=0, eos_id=1)
        ids, mask = ours(prompts)
        ref = hf(prompts, padding="max_length", truncation=True, max_length=max_len, return_tensors="np")
        np.testing.assert_array_equal(ids, ref["input_ids"], err_msg=f"max_len={max_len}")
        np.testing.assert_array_equal(mask, ref["attention_mask"], err_msg=f"max_len={max_len}")
    with pytest.raises(ValueError, match="no T5 tokenizer.*tokenizer='byte'"):
        T5TextEncoder.from_directory(directory, max_len=24)
    byte_dir = tmp_path / "byt5"
    shutil.copytree(directory, byte_dir)
    hf.save_pretrained(str(byte_dir))  # tokenizer_config.json naming ByT5Tokenizer
    encoder = T5TextEncoder.from_directory(str(byte_dir), max_len=24)
    assert isinstance(encoder.tokenizer, t5.ByteTokenizer)
    states, mask = encoder(prompts)
    ids = encoder.tokenize(prompts)
    encoder16 = T5TextEncoder.from_directory(str(byte_dir), max_len=24, dtype=jnp.bfloat16)
    _check(states, encoder16(prompts)[0], _reference(torch, model, ids, mask), mask, "byt5")
    data = prompts[4].encode()  # 35 bytes; the 23 kept end inside a 3-byte character, which is dropped
    msg = encoder.truncation_message(prompts[4])
    assert msg and f"is {len(data) + 1} tokens long" in msg and repr(prompts[4][:15]) in msg
    assert prompts[4][:15] == data[:23].decode(errors="ignore") and prompts[4][14] == "東"


def test_spiece_tokenizer_parity(torch_mods, tmp_path):
    """spiece.model through ``sentencepiece`` (when no tokenizer.json) equals transformers' T5Tokenizer on it."""
    _, transformers = torch_mods
    spm = pytest.importorskip("sentencepiece", reason="the spiece.model reader: pip install sentencepiece")
    import io
    corpus = [p for p in PROMPTS if p] * 20
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_writer=model, vocab_size=40, pad_id=0,
                                   eos_id=1, unk_id=2, bos_id=-1, minloglevel=2, hard_vocab_limit=False)
    (tmp_path / "spiece.model").write_bytes(model.getvalue())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5", "vocab_size": 40}))
    hf = transformers.T5Tokenizer.from_pretrained(str(tmp_path), extra_ids=0)
    prompts = PROMPTS + ["Unknown Words, and   spaces\t!"]
    for max_len in (16, 4):
        ours = load_t5_tokenizer(str(tmp_path), max_len)
        assert isinstance(ours, t5.SentencePieceTokenizer)
        ids, mask = ours(prompts)
        ref = hf(prompts, padding="max_length", truncation=True, max_length=max_len, return_tensors="np")
        np.testing.assert_array_equal(ids, ref["input_ids"], err_msg=f"max_len={max_len}")
        np.testing.assert_array_equal(mask, ref["attention_mask"], err_msg=f"max_len={max_len}")


def test_bf16_checkpoint_parity(torch_mods, saved, tmp_path):
    """A checkpoint stored in bfloat16 (as umT5-XXL's are) reads exactly: the float32 params equal the stored
    bfloat16 values."""
    import copy
    torch, _ = torch_mods
    model = copy.deepcopy(saved("umt5")[0]).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    cfg, _, params = load_t5(str(tmp_path))
    for name, (path, transpose) in hf_names(cfg).items():
        ref = model.state_dict()[f"encoder.{name}"].float().numpy()
        np.testing.assert_array_equal(np.asarray(get_leaf(params, path)), ref.T if transpose else ref, err_msg=name)


# ------------------------------------------------------------------------------------------------- bad inputs
SMALL = dict(vocab_size=50, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
             relative_attention_max_distance=12)


def _write(directory, config, drop=(), reshape=(), extra=None):
    """A random T5-family encoder written the Hugging Face way with numpy (no torch): config.json + safetensors."""
    from safetensors.numpy import save_file
    cfg = T5Config.from_dict(config)
    rng = np.random.default_rng(0)  # random values of the abstract params' shapes: no initialiser to compile
    params = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(np.float32), t5.abstract_t5(cfg)[1])
    tensors = {}
    for name, (path, transpose) in hf_names(cfg).items():
        x = np.asarray(get_leaf(params, path))
        x = x.T if transpose else x
        if name in reshape:
            x = x[..., :-1]
        if name not in drop:
            tensors["shared.weight" if name == "embed_tokens.weight" else f"encoder.{name}"] = np.ascontiguousarray(x)
    tensors.update(extra or {})
    tensors["decoder.final_layer_norm.weight"] = np.ones(cfg.d_model, np.float32)  # ignored
    os.makedirs(directory, exist_ok=True)
    save_file(tensors, os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    return cfg, params


def test_t5_loader_round_trip_and_errors(tmp_path, monkeypatch):
    good = tmp_path / "good"
    cfg, params = _write(good, {"model_type": "umt5", **SMALL})
    loaded_cfg, _, loaded = load_t5(str(good))
    assert loaded_cfg == cfg and cfg.activation == "gelu_new" and cfg.has_relative_bias(1)
    jax.tree.map(np.testing.assert_array_equal, loaded, params)

    config = str(good / "config.json")
    for change, pattern in [({"feed_forward_proj": "gated-gelu-fast"}, "feed_forward_proj='gated-gelu-fast'"),
                            ({"feed_forward_proj": "swiglu"}, "feed_forward_proj='swiglu'"),
                            ({"num_heads": 0}, r"T5Config.num_heads=0 must be an integer >= 1"),
                            ({"d_model": 16.0}, r"T5Config.d_model=16.0 must be an integer"),
                            ({"layer_norm_epsilon": -1}, "layer_norm_epsilon=-1"),
                            ({"relative_attention_num_buckets": 2}, "relative_attention_num_buckets=2"),
                            ({"relative_attention_max_distance": 2}, "relative_attention_max_distance=2"),
                            ({"pad_token_id": 50}, r"pad_token_id=50 must be a token id in \[0, vocab_size=50\)"),
                            ({"model_type": "bart"}, "model_type='bart' is not supported"),
                            ({"is_decoder": True}, "is_decoder=true")]:
        with open(config, "w") as f:
            json.dump({"model_type": "umt5", **SMALL, **change}, f)
        with pytest.raises(ValueError, match=f"{config}.*{pattern}"):
            load_t5(str(good))
    with open(config, "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match=f"{config}.*is not valid JSON"):
        load_t5(str(good))
    os.remove(config)
    with pytest.raises(ValueError, match=f"no T5 config: '{config}' does not exist"):
        load_t5(str(good))
    with pytest.raises(ValueError, match="no T5 directory"):
        load_t5(str(tmp_path / "nowhere"))

    missing = "block.1.layer.1.DenseReluDense.wi_1.weight"
    _write(tmp_path / "missing", {"model_type": "umt5", **SMALL}, drop=(missing,))
    with pytest.raises(ValueError, match=f"lacks the T5 tensor '{missing}'"):
        load_t5(str(tmp_path / "missing"))
    bad = "block.0.layer.0.SelfAttention.k.weight"
    _write(tmp_path / "shape", {"model_type": "umt5", **SMALL}, reshape=(bad,))
    with pytest.raises(ValueError, match=rf"tensor 'encoder.{bad}' has shape \(16, 15\).*implies \(16, 16\)"):
        load_t5(str(tmp_path / "shape"))
    # umT5 weights under a T5 config, T5 weights under a umT5 config, a gated checkpoint under a ReLU config
    umt5_weights = tmp_path / "umt5_as_t5"
    _write(umt5_weights, {"model_type": "umt5", **SMALL})
    with open(umt5_weights / "config.json", "w") as f:
        json.dump({"model_type": "t5", "feed_forward_proj": "gated-gelu", **SMALL}, f)
    with pytest.raises(ValueError, match="relative attention bias in layers after the first.*model_type='t5'"):
        load_t5(str(umt5_weights))
    t5_weights = tmp_path / "t5_as_umt5"
    _write(t5_weights, {"model_type": "t5", "feed_forward_proj": "gated-gelu", **SMALL})
    with open(t5_weights / "config.json", "w") as f:
        json.dump({"model_type": "umt5", **SMALL}, f)
    with pytest.raises(ValueError, match="lacks the T5 tensor 'block.1.layer.0.SelfAttention.relative_attention_bias"
                                         ".weight'.*model_type='umt5' has a relative attention bias in every layer"):
        load_t5(str(t5_weights))
    with open(t5_weights / "config.json", "w") as f:
        json.dump({"model_type": "t5", "feed_forward_proj": "relu", **SMALL}, f)
    with pytest.raises(ValueError, match=r"lacks the T5 tensor 'block.0.layer.1.DenseReluDense.wi.weight'.*"
                                         r"feed_forward_proj='relu'"):
        load_t5(str(t5_weights))
    with open(t5_weights / "config.json", "w") as f:
        json.dump({"model_type": "t5", "feed_forward_proj": "gated-gelu", **SMALL, "num_layers": 1}, f)
    with pytest.raises(ValueError, match="holds encoder blocks up to 1.*num_layers=1"):
        load_t5(str(t5_weights))

    with pytest.raises(ValueError, match="no T5 tokenizer in"):
        load_t5_tokenizer(str(good), 8, config=cfg)
    with pytest.raises(ValueError, match="tokenizer='words' is not a T5 tokenizer kind"):
        load_t5_tokenizer(str(good), 8, config=cfg, kind="words")
    with pytest.raises(ValueError, match="tokenizer='byte' needs vocab_size >= 259"):
        load_t5_tokenizer(str(good), 8, config=cfg, kind="byte")
    (good / "spiece.model").write_bytes(b"")
    monkeypatch.setitem(__import__("sys").modules, "sentencepiece", None)  # as if not installed
    with pytest.raises(ValueError, match="sentencepiece package is not installed: `pip install sentencepiece`"):
        load_t5_tokenizer(str(good), 8, config=cfg)
    with pytest.raises(ValueError, match="max_len=0 must be an integer >= 1"):
        t5.ByteTokenizer(0, 0, 1)


def test_a_t5_text_encoder_is_selected_by_model_text_kind_and_checks_its_path_and_width(saved, tmp_path):
    import json
    from streamdit_jax.models.config import TextEncoderConfig
    from streamdit_jax.models.text import make_text_encoder
    _, directory = saved("byt5")
    byt5 = tmp_path / "byt5"
    shutil.copytree(directory, byt5)
    (byt5 / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ByT5Tokenizer"}))
    encoder = make_text_encoder(TextEncoderConfig(kind="t5", path=str(byt5), width=32, max_len=12))
    states, mask = encoder.encode(encoder.params, encoder.tokenize(["ab", "a longer prompt"]))
    assert states.shape == (2, 12, 32) and mask.tolist()[0] == [1, 1, 1] + [0] * 9  # 2 bytes + EOS
    assert not np.asarray(states)[0, 3:].any() and np.asarray(states)[0, :3].any()
    with pytest.raises(ValueError, match="model.text.width=64 does not match the text encoder at .*d_model is 32"):
        make_text_encoder(TextEncoderConfig(kind="t5", path=str(byt5), width=64))
    with pytest.raises(ValueError, match="model.text.kind='t5' needs model.text.path"):
        make_text_encoder(TextEncoderConfig(kind="t5", width=32))
    with pytest.raises(ValueError, match="model.text.kind='umt5' is invalid: valid is one of 'byte', 'minilm', 't5'"):
        TextEncoderConfig(kind="umt5")


def test_the_tokenizer_is_found_beside_the_weights_or_in_a_diffusers_pipelines_tokenizer_folder(tmp_path):
    from streamdit_jax.models.t5 import tokenizer_directory
    encoder, sibling = tmp_path / "text_encoder", tmp_path / "tokenizer"
    encoder.mkdir()
    sibling.mkdir()
    assert tokenizer_directory(str(encoder)) == str(encoder)  # neither has a tokenizer: the error names the encoder's
    (sibling / "spiece.model").write_bytes(b"x")
    assert tokenizer_directory(str(encoder)) == str(sibling)
    assert tokenizer_directory(str(encoder) + "/") == str(sibling)
    (encoder / "tokenizer.json").write_text("{}")
    assert tokenizer_directory(str(encoder)) == str(encoder)  # the encoder's own tokenizer wins
