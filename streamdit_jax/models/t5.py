"""The T5 family's text encoder in Flax NNX, loaded from a Hugging Face directory without PyTorch or transformers:
T5 (Raffel et al., 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer"; ReLU
feed-forward), T5 v1.1 and mT5 (gated-GELU feed-forward, Shazeer 2020, "GLU Variants Improve Transformer"), umT5
(Chung et al., 2023, "UniMax"; a relative position bias in every layer: the text encoder of Wan2.1) and ByT5 (Xue
et al., 2022; T5 v1.1 over UTF-8 bytes).

``T5Encoder`` is transformers' ``T5EncoderModel`` / ``UMT5EncoderModel`` forward: token embedding, then pre-norm
layers (T5 LayerNorm = RMSNorm with a scale and no bias or mean; self-attention whose scores are NOT scaled by
1/sqrt(d_kv) (T5 folds it into the query initialisation) plus a learned bias per (head, relative-position bucket)
and the padding mask; residual; T5 LayerNorm; ReLU or gated-activation feed-forward; residual), a final T5
LayerNorm. T5 and mT5 hold the bucket embedding in layer 0 and share its bias with every layer; umT5 holds one per
layer. Buckets are transformers' bidirectional ``_relative_position_bucket``. Norm statistics, attention scores and
softmax are float32 whatever the compute dtype.

``load_t5`` reads config.json and model.safetensors (or shards with model.safetensors.index.json), tensor names with
or without the ``encoder.`` prefix (``shared.weight`` is the encoder's embedding; decoder and head tensors are
ignored), optionally straight onto a mesh by the parameters' logical axis names. ``load_t5_tokenizer`` reads
tokenizer.json (``tokenizers``), else spiece.model (``sentencepiece``), or is ByT5's byte tokenizer (UTF-8 bytes + 3,
EOS 1, pad 0); every prompt ends with EOS, as transformers' T5 tokenizers do. ``T5TextEncoder`` is the frozen
``models.text.TextEncoder`` of the two, with Wan2.1's convention: pad to max_len (512 there), encode with the
attention mask, zero the hidden states past each prompt's length.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax import parallel
from streamdit_jax.models.attention import dense, sharded_init
from streamdit_jax.models.hf_checkpoint import (ACTIVATIONS, CONFIG_FILE, TOKENIZER_FILE, FrozenTextEncoder,
                                                JsonTokenizer, PaddedTokenizer, attention_bias, load_safetensors,
                                                read_config)

SPIECE_FILE = "spiece.model"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
MODEL_TYPES = ("t5", "mt5", "umt5")  # umt5: a relative attention bias in every layer; t5, mt5: layer 0's, shared
TOKENIZER_KINDS = ("json", "spiece", "byte")
BYTE_OFFSET = 3  # ByT5: byte b is token b + 3 after <pad> 0, </s> 1, <unk> 2

# transformers' config defaults where umT5's and mT5's differ from T5's (applied to fields a config.json leaves out)
_DEFAULTS = {t: dict(vocab_size=250112, d_ff=1024, num_layers=8, num_heads=6, feed_forward_proj="gated-gelu")
             for t in ("mt5", "umt5")}


# ---------------------------------------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class T5Config:
    """The fields of a Hugging Face T5 / mT5 / umT5 config.json that the encoder needs. Defaults: t5-small's;
    ``from_dict`` fills the fields a config.json leaves out with transformers' defaults for its model_type."""

    model_type: str = "t5"
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"
    pad_token_id: int = 0
    eos_token_id: int = 1

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"T5Config.model_type={self.model_type!r} is not supported; valid: {MODEL_TYPES}")
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                     "relative_attention_num_buckets", "relative_attention_max_distance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"T5Config.{name}={value!r} must be an integer >= 1")
        if self.relative_attention_num_buckets < 4:
            raise ValueError(f"T5Config.relative_attention_num_buckets={self.relative_attention_num_buckets} must be "
                             ">= 4 (half per direction, half of those for exact distances)")
        if self.relative_attention_max_distance <= self.relative_attention_num_buckets // 4:
            raise ValueError(f"T5Config.relative_attention_max_distance={self.relative_attention_max_distance} must "
                             f"exceed the exact range relative_attention_num_buckets // 4 = "
                             f"{self.relative_attention_num_buckets // 4}")
        parts = self.feed_forward_proj.split("-") if isinstance(self.feed_forward_proj, str) else []
        if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == "gated")) or parts[-1] not in ACTIVATIONS:
            raise ValueError(f"T5Config.feed_forward_proj={self.feed_forward_proj!r} is not supported: 'ACT' or "
                             f"'gated-ACT' with ACT one of {sorted(ACTIVATIONS)}")
        if isinstance(self.layer_norm_epsilon, bool) or not (isinstance(self.layer_norm_epsilon, (int, float))
                                                             and self.layer_norm_epsilon > 0):
            raise ValueError(f"T5Config.layer_norm_epsilon={self.layer_norm_epsilon!r} must be a number > 0")
        for name in ("pad_token_id", "eos_token_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, int) and 0 <= value < self.vocab_size):
                raise ValueError(f"T5Config.{name}={value!r} must be a token id in [0, vocab_size={self.vocab_size})")

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def activation(self) -> str:
        """transformers' choice: "gated-gelu" is the tanh approximation (gelu_new), else the named ACT2FN."""
        return "gelu_new" if self.feed_forward_proj == "gated-gelu" else self.feed_forward_proj.split("-")[-1]

    @property
    def inner_dim(self) -> int:
        return self.num_heads * self.d_kv

    def has_relative_bias(self, layer: int) -> bool:
        return layer == 0 or self.model_type == "umt5"

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "T5Config":
        """From a config.json's dictionary: the fields above (absent ones take transformers' defaults for the model
        type), others ignored. A decoder config is refused."""
        if d.get("is_decoder", False):
            raise ValueError(f"{source}: is_decoder=true is not supported (the bidirectional encoder only)")
        kw = {**_DEFAULTS.get(d.get("model_type"), {}),
              **{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}}
        for name in ("pad_token_id", "eos_token_id"):
            if kw.get(name, 0) is None:
                kw.pop(name)
        try:
            return cls(**kw)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, path: str) -> "T5Config":
        return cls.from_dict(read_config(path, "T5"), source=path)


# umT5-XXL, the text encoder of Wan2.1 (google/umt5-xxl's config.json): 4096 wide, 24 layers, 64 heads of 64
UMT5_XXL = T5Config(model_type="umt5", vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                    num_heads=64, feed_forward_proj="gated-gelu")


# ----------------------------------------------------------------------------------------------------------- model
def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
    """[length, length] int32: the bucket of key position j seen from query position i, bidirectional (the
    encoder's), as transformers' ``T5Attention._relative_position_bucket`` of j - i.

    Half the buckets are for keys after the query. Of each half, distances below a quarter of num_buckets get one
    bucket each; larger ones are binned logarithmically up to max_distance, beyond which all share the last bucket.
    The logarithm is float32 with the operations in transformers' order: in float64 some distances on a bin's edge
    land in the neighbouring bucket (e.g. at 18 buckets and max distance 128)."""
    relative = np.arange(length)[None, :] - np.arange(length)[:, None]
    half = num_buckets // 2
    exact = half // 2
    distance = np.abs(relative)
    ratio = np.maximum(distance, exact).astype(np.float32) / np.float32(exact)  # no log(0): those are exact anyway
    scaled = np.log(ratio) / np.float32(math.log(max_distance / exact)) * np.float32(half - exact)
    large = np.minimum(exact + scaled.astype(np.int64), half - 1)
    return ((relative > 0) * half + np.where(distance < exact, distance, large)).astype(np.int32)


class T5LayerNorm(nnx.Module):
    """T5's LayerNorm: x * rsqrt(mean(x^2) + eps) * weight (RMSNorm: no mean subtraction, no bias), in float32."""

    def __init__(self, width: int, eps: float, *, dtype=jnp.float32, param_dtype=jnp.float32):
        self.eps, self.dtype = eps, dtype
        self.weight = nnx.Param(jnp.ones((width,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps)
        return (x * self.weight[...].astype(jnp.float32)).astype(self.dtype)


class T5Block(nnx.Module):
    """One pre-norm T5 encoder layer (HF ``block.i``): self-attention (q, k, v, o; the bucket embedding
    ``relative_bias`` [num_buckets, heads] when this layer holds one), then the feed-forward (wi or wi_0/wi_1, wo)."""

    def __init__(self, cfg: T5Config, with_bias: bool, *, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32, precision=None):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype, use_bias=False)
        width, inner = cfg.d_model, cfg.inner_dim
        self.num_heads, self.d_kv, self.precision = cfg.num_heads, cfg.d_kv, precision
        self.buckets, self.max_distance = cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance
        self.activation = cfg.activation
        self.attn_norm = T5LayerNorm(width, cfg.layer_norm_epsilon, dtype=dtype, param_dtype=param_dtype)
        self.q = dense(width, inner, ("text_embed", "heads"), **kw)
        self.k = dense(width, inner, ("text_embed", "heads"), **kw)
        self.v = dense(width, inner, ("text_embed", "heads"), **kw)
        self.o = dense(inner, width, ("heads", "text_embed"), **kw)
        self.relative_bias = nnx.Param(sharded_init(nnx.initializers.normal(width ** -0.5), (None, "heads"))(
            rngs.params(), (self.buckets, cfg.num_heads), param_dtype)) if with_bias else None
        self.ffn_norm = T5LayerNorm(width, cfg.layer_norm_epsilon, dtype=dtype, param_dtype=param_dtype)
        if cfg.is_gated:
            self.wi_0 = dense(width, cfg.d_ff, ("text_embed", "mlp"), **kw)
            self.wi_1 = dense(width, cfg.d_ff, ("text_embed", "mlp"), **kw)
        else:
            self.wi = dense(width, cfg.d_ff, ("text_embed", "mlp"), **kw)
        self.wo = dense(cfg.d_ff, width, ("mlp", "text_embed"), **kw)
        for name in ("q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"):
            if hasattr(self, name):
                getattr(self, name).precision = precision

    def position_bias(self, length: int) -> jax.Array:
        """[1, heads, L, L] float32: this layer's learned bias of each (query, key) position pair's bucket."""
        table = relative_position_buckets(length, self.buckets, self.max_distance)  # static: a constant
        values = jnp.take(self.relative_bias[...].astype(jnp.float32), jnp.asarray(table), axis=0)
        return jnp.transpose(values, (2, 0, 1))[None]

    def __call__(self, x: jax.Array, position_bias: jax.Array, mask_bias: jax.Array) -> jax.Array:
        """x: [b, L, d_model]; position_bias: [1, heads, L, L]; mask_bias: [b, 1, 1, L] (``attention_bias``)."""
        heads = lambda t: t.reshape(t.shape[:-1] + (self.num_heads, self.d_kv))
        h = self.attn_norm(x)
        q, k, v = heads(self.q(h)), heads(self.k(h)), heads(self.v(h))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=self.precision, preferred_element_type=jnp.float32)
        probs = jax.nn.softmax(scores + position_bias + mask_bias, axis=-1)  # unscaled scores, as T5
        o = jnp.einsum("bhqk,bkhd->bqhd", probs.astype(v.dtype), v, precision=self.precision)
        x = x + self.o(o.reshape(o.shape[:2] + (-1,)))
        h = self.ffn_norm(x)
        act = ACTIVATIONS[self.activation]
        h = act(self.wi_0(h)) * self.wi_1(h) if hasattr(self, "wi_0") else act(self.wi(h))
        return x + self.wo(h)


class T5Encoder(nnx.Module):
    """T5's encoder stack: embedding, ``T5Block`` layers, final T5 LayerNorm (no dropout: inference)."""

    def __init__(self, cfg: T5Config, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32,
                 precision=None):
        self.config = cfg
        self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs, dtype=dtype, param_dtype=param_dtype,
                               embedding_init=sharded_init(nnx.initializers.normal(1.0), ("vocab", "text_embed")))
        self.layers = nnx.List([T5Block(cfg, cfg.has_relative_bias(i), rngs=rngs, dtype=dtype,
                                        param_dtype=param_dtype, precision=precision)
                                for i in range(cfg.num_layers)])
        self.final_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon, dtype=dtype, param_dtype=param_dtype)

    def __call__(self, tokens: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
        """tokens: int [b, L]; mask: [b, L], 1 on tokens (default: tokens != pad). Returns the last hidden state
        [b, L, d_model] in the compute dtype (padded positions hold whatever T5 computes there, as transformers)."""
        if mask is None:
            mask = tokens != self.config.pad_token_id
        mask_bias = attention_bias(mask)
        x = self.embed(tokens)
        position_bias = None
        for layer in self.layers:
            if layer.relative_bias is not None:  # T5: layer 0's bias serves all layers; umT5: each its own
                position_bias = layer.position_bias(tokens.shape[-1])
            x = layer(x, position_bias, mask_bias)
        return self.final_norm(x)


def abstract_t5(cfg: T5Config, dtype=jnp.float32, precision=None, mesh=None, rules=parallel.LOGICAL_RULES):
    """(graphdef, abstract params as a pure dict of jax.ShapeDtypeStruct) of a ``T5Encoder`` with ``dtype`` weights
    and compute, without allocating anything; with ``mesh`` each leaf carries the NamedSharding its logical axis
    names map to under ``rules`` (for ``jax.jit(...).lower``)."""
    with parallel.outside_mesh():
        graphdef, abstract = nnx.split(nnx.eval_shape(
            lambda: T5Encoder(cfg, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype, precision=precision)))
    params = nnx.to_pure_dict(abstract)
    if mesh is not None:
        shardings = nnx.to_pure_dict(parallel.state_shardings(abstract, mesh, rules))
        params = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), params, shardings)
    return graphdef, params


def encoder_flops(cfg: T5Config, batch: int, length: int) -> float:
    """Analytic FLOPs of one encoder call: the layers' matmuls (q, k, v, o and the feed-forward, 2 per
    multiply-add) and attention's score and value products over all L x L pairs."""
    tokens = batch * length
    ffn = (3 if cfg.is_gated else 2) * cfg.d_model * cfg.d_ff
    per_layer = 2.0 * tokens * (4 * cfg.d_model * cfg.inner_dim + ffn) + 4.0 * batch * length ** 2 * cfg.inner_dim
    return cfg.num_layers * per_layer


# ----------------------------------------------------------------------------------------------------- weights
def hf_names(cfg: T5Config) -> dict[str, tuple[tuple, bool]]:
    """{Hugging Face tensor name without ``encoder.``: (path in ``T5Encoder``'s pure-dict params, transpose)}."""
    names: dict[str, tuple[tuple, bool]] = {"embed_tokens.weight": (("embed", "embedding"), False),
                                            "final_layer_norm.weight": (("final_norm", "weight"), False)}
    feed_forward = ("wi_0", "wi_1", "wo") if cfg.is_gated else ("wi", "wo")
    for i in range(cfg.num_layers):
        attn, ff, ours = f"block.{i}.layer.0.", f"block.{i}.layer.1.", ("layers", i)
        names[f"{attn}layer_norm.weight"] = (ours + ("attn_norm", "weight"), False)
        names.update({f"{attn}SelfAttention.{n}.weight": (ours + (n, "kernel"), True) for n in "qkvo"})
        if cfg.has_relative_bias(i):
            names[f"{attn}SelfAttention.relative_attention_bias.weight"] = (ours + ("relative_bias",), False)
        names[f"{ff}layer_norm.weight"] = (ours + ("ffn_norm", "weight"), False)
        names.update({f"{ff}DenseReluDense.{n}.weight": (ours + (n, "kernel"), True) for n in feed_forward})
    return names


def _canonical(name: str) -> Optional[str]:
    """A checkpoint's tensor name -> ``hf_names``' form; None for tensors outside the encoder (decoder, heads)."""
    if name.startswith("transformer."):  # T5ForSequenceClassification nests a T5Model
        name = name[len("transformer."):]
    if name == "shared.weight":  # the encoder's embedding is tied to it (save_pretrained writes only this one)
        return "embed_tokens.weight"
    if name.startswith("encoder."):
        return name[len("encoder."):]
    return name if name.split(".", 1)[0] in ("block", "embed_tokens", "final_layer_norm") else None


def _unexpected(cfg: T5Config, config_path: str) -> Callable[[list[str]], Optional[str]]:
    def message(unused: list[str]) -> Optional[str]:
        blocks = [int(m.group(1)) for m in map(re.compile(r"block\.(\d+)\.").match, unused) if m]
        if blocks and max(blocks) >= cfg.num_layers:
            return (f"holds encoder blocks up to {max(blocks)}, but {config_path!r} says num_layers="
                    f"{cfg.num_layers}")
        if any(n.endswith("relative_attention_bias.weight") for n in unused):
            return (f"holds a relative attention bias in layers after the first (umT5's layout), but {config_path!r} "
                    f"says model_type={cfg.model_type!r} (one bias, in layer 0): umT5 weights need model_type 'umt5'")
        return f"holds encoder tensors that {config_path!r} does not describe: {sorted(unused)[:4]}"
    return message


def _missing_hint(cfg: T5Config) -> Callable[[list[str]], str]:
    def hint(missing: list[str]) -> str:
        if any(n.endswith("relative_attention_bias.weight") and not n.startswith("block.0.") for n in missing):
            return (f" (model_type={cfg.model_type!r} has a relative attention bias in every layer; T5 and mT5 "
                    "weights, with one in layer 0, need model_type 't5' or 'mt5')")
        if any(".DenseReluDense.wi" in n for n in missing):
            return f" (feed_forward_proj={cfg.feed_forward_proj!r})"
        return ""
    return hint


def load_t5(directory: str, dtype=jnp.float32, precision=None, mesh=None, rules=parallel.LOGICAL_RULES):
    """(T5Config, graphdef, params) of the T5 / mT5 / umT5 / ByT5 encoder in a local Hugging Face directory:
    config.json and model.safetensors (or shards listed by model.safetensors.index.json), as T5EncoderModel,
    UMT5EncoderModel or T5ForConditionalGeneration save them (decoder and heads ignored). ``params`` is a pure dict
    of jax arrays in ``dtype`` (also the compute dtype of ``graphdef``), each placed by its logical axis names on
    ``mesh`` when given (every device reading only its slice). ``nnx.merge(graphdef, params)(tokens, mask)`` runs it.
    ValueError naming the file and the missing, unexpected or mis-shaped tensor, or the config field."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"no T5 directory: {directory!r} does not exist or is not a directory")
    config_path = os.path.join(directory, CONFIG_FILE)
    cfg = T5Config.from_json(config_path)
    graphdef, params = abstract_t5(cfg, dtype, precision)
    shardings = None
    if mesh is not None:
        shardings = jax.tree.map(lambda a: a.sharding, abstract_t5(cfg, dtype, precision, mesh, rules)[1])
    params = load_safetensors(directory, hf_names(cfg), params, what="T5", canonical=_canonical, dtype=dtype,
                              unexpected=_unexpected(cfg, config_path), missing_hint=_missing_hint(cfg),
                              shardings=shardings)
    return cfg, graphdef, params


# ---------------------------------------------------------------------------------------------------- tokenizers
class EosTokenizer(PaddedTokenizer):
    """A prompt's content ids (cut to max_len - 1), then EOS, then pad_id up to max_len: T5's layout, for tokenizers
    that produce the content ids themselves (subclasses define ``content`` and ``decode``)."""

    num_special = 1

    def __init__(self, max_len: int, pad_id: int, eos_id: int):
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len={max_len!r} must be an integer >= 1 (EOS)")
        self.max_len, self.pad_id, self.eos_id = max_len, int(pad_id), int(eos_id)

    def content(self, prompt: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def rows(self, prompts: list[str]) -> list[list[int]]:
        return [self.content(prompt)[: self.max_len - 1] + [self.eos_id] for prompt in prompts]

    def num_tokens(self, prompt: str) -> int:
        """How many tokens the whole prompt is, EOS included (before truncation)."""
        return len(self.content(prompt)) + 1

    def kept_text(self, prompt: str) -> Optional[str]:
        """The beginning of ``prompt`` that survives truncation (None when it all does)."""
        ids = self.content(prompt)
        return None if len(ids) < self.max_len else self.decode(ids[: self.max_len - 1])


class ByteTokenizer(EosTokenizer):
    """ByT5's tokenizer (transformers' ``ByT5Tokenizer``): UTF-8 bytes + 3, EOS; no vocabulary file. Special-token
    strings typed in a prompt stay bytes. A character cut by truncation is dropped from ``kept_text``."""

    def content(self, prompt: str) -> list[int]:
        return [b + BYTE_OFFSET for b in prompt.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i - BYTE_OFFSET for i in ids).decode("utf-8", errors="ignore")


class SentencePieceTokenizer(EosTokenizer):
    """spiece.model read by ``sentencepiece`` (pieces as ``SentencePieceProcessor.encode``), then EOS."""

    def __init__(self, path: str, max_len: int, pad_id: int, eos_id: int):
        super().__init__(max_len, pad_id, eos_id)
        if not os.path.isfile(path):
            raise ValueError(f"no tokenizer: {path!r} does not exist")
        try:
            import sentencepiece
        except ImportError:
            raise ValueError(f"{path!r} is a SentencePiece model and the sentencepiece package is not installed: "
                             "`pip install sentencepiece` (or provide the model's tokenizer.json)") from None
        self.path = path
        self._sp = sentencepiece.SentencePieceProcessor(model_file=path)

    def content(self, prompt: str) -> list[int]:
        return list(self._sp.encode(prompt))

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode(list(ids))


def _tokenizer_kind(directory: str) -> str:
    if os.path.isfile(os.path.join(directory, TOKENIZER_FILE)):
        return "json"
    if os.path.isfile(os.path.join(directory, SPIECE_FILE)):
        return "spiece"
    tokenizer_config = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    if os.path.isfile(tokenizer_config):
        with open(tokenizer_config) as f:
            try:
                if json.load(f).get("tokenizer_class") == "ByT5Tokenizer":
                    return "byte"
            except (json.JSONDecodeError, AttributeError):
                pass
    raise ValueError(f"no T5 tokenizer in {directory!r}: neither {TOKENIZER_FILE} nor {SPIECE_FILE}, and no "
                     f"{TOKENIZER_CONFIG_FILE} naming ByT5Tokenizer (a ByT5 needs no file: pass tokenizer='byte')")


def tokenizer_directory(directory: str) -> str:
    """Where the tokenizer of the encoder in ``directory`` lies: ``directory`` itself, or, when it holds no tokenizer
    file, a diffusers pipeline's sibling ``tokenizer/`` folder (Wan2.1-T2V-*-Diffusers keeps umT5's weights in
    text_encoder/ and its tokenizer in tokenizer/)."""
    sibling = os.path.join(os.path.dirname(os.path.normpath(directory)), "tokenizer")
    has_files = lambda d: any(os.path.isfile(os.path.join(d, f)) for f in (TOKENIZER_FILE, SPIECE_FILE))
    return sibling if not has_files(directory) and has_files(sibling) else directory


def load_t5_tokenizer(directory: str, max_len: int, config: Optional[T5Config] = None, kind: Optional[str] = None):
    """The tokenizer of a Hugging Face T5-family directory (or of its pipeline's sibling tokenizer/ folder:
    ``tokenizer_directory``), padding with the config's pad_token_id and ending every prompt with its eos_token_id:
    ``kind`` "json" (tokenizer.json), "spiece" (spiece.model) or "byte" (ByT5), by default the first of those the
    directory has (ByT5: tokenizer_config.json names ByT5Tokenizer).
    ``tokenizer(prompts)`` -> (ids int32 [n, max_len], mask int32 [n, max_len]); "" is [EOS] (the CFG null prompt)."""
    directory = os.fspath(directory)
    cfg = config if config is not None else T5Config.from_json(os.path.join(directory, CONFIG_FILE))
    directory = tokenizer_directory(directory)
    kind = _tokenizer_kind(directory) if kind is None else kind
    if kind == "json":
        return JsonTokenizer(os.path.join(directory, TOKENIZER_FILE), max_len, pad_id=cfg.pad_token_id,
                             append_id=cfg.eos_token_id)
    if kind == "spiece":
        return SentencePieceTokenizer(os.path.join(directory, SPIECE_FILE), max_len, cfg.pad_token_id,
                                      cfg.eos_token_id)
    if kind == "byte":
        if cfg.vocab_size < 256 + BYTE_OFFSET:
            raise ValueError(f"tokenizer='byte' needs vocab_size >= {256 + BYTE_OFFSET} (ByT5's), the config has "
                             f"{cfg.vocab_size}")
        return ByteTokenizer(max_len, cfg.pad_token_id, cfg.eos_token_id)
    raise ValueError(f"tokenizer={kind!r} is not a T5 tokenizer kind; valid: {TOKENIZER_KINDS}")


# -------------------------------------------------------------------------------------------------- text encoder
class T5TextEncoder(FrozenTextEncoder):
    """A frozen T5-family encoder (umT5-XXL for Wan2.1) as a ``models.text.TextEncoder``: embeddings
    [n, max_len, d_model] are the last hidden state (float32) with zeros past each prompt's EOS; the mask is
    tokens != pad."""

    specials = "EOS"

    def __init__(self, config: T5Config, graphdef, params, tokenizer, name: Optional[str] = None):
        if tokenizer.pad_id != config.pad_token_id:
            raise ValueError(f"the tokenizer pads with id {tokenizer.pad_id}, the model's pad_token_id is "
                             f"{config.pad_token_id}")
        super().__init__(name or config.model_type, config, graphdef, params, tokenizer, width=config.d_model)

    @classmethod
    def from_directory(cls, path: str, max_len: int = 512, dtype=jnp.float32, precision=None,
                       name: Optional[str] = None, tokenizer: Optional[str] = None, mesh=None) -> "T5TextEncoder":
        """Weights by ``load_t5`` (on ``mesh`` when given), tokenizer by ``load_t5_tokenizer`` (``tokenizer``: its
        kind, default from the directory's files)."""
        config, graphdef, params = load_t5(path, dtype=dtype, precision=precision, mesh=mesh)
        return cls(config, graphdef, params, load_t5_tokenizer(path, max_len, config, tokenizer), name=name)
