"""Text encoders behind one interface (``TextEncoder``), selected by ``TextEncoderConfig.kind``.

The velocity model never owns its text encoder: it takes text embeddings [n, L, width] and a mask [n, L]. The paper
runs frozen UL2, ByT5 and MetaCLIP encoders, only when the prompt changes (Sec. 5); a frozen encoder's parameters
live outside the trained model and its embeddings can be computed once per caption (training) or per prompt
(streaming). The built-in default is a small byte-level transformer (ByT5-like input) trained jointly with the DiT:
a ``trainable`` encoder whose parameters sit beside the DiT's in the trained model (``models.conditioned``).
"""
from __future__ import annotations

from typing import Optional, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax import parallel
from streamdit_jax.models.attention import CrossAttention, dense, sharded_init
from streamdit_jax.models.config import TEXT_ENCODER_KINDS, TextEncoderConfig

PAD, BOS = 0, 1
BYTE_OFFSET = 2  # byte b -> token b + 2
VOCAB_SIZE = 256 + BYTE_OFFSET


class TextEncoder(Protocol):
    """What the trainer and the streamer need of a text encoder.

    ``tokenize`` runs on the host (strings -> int32 [n, max_len]); ``encode(params, tokens)`` is a pure function
    (jittable) -> (embeddings [n, max_len, width], mask [n, max_len], 1 on the prompt's tokens); the empty prompt ""
    is the classifier-free-guidance null prompt. ``trainable`` encoders are optimised with the velocity model and
    their ``params`` are the trained model's ``["text_encoder"]`` entry; frozen ones bring their own.
    ``truncation_message(prompt)`` is None when ``tokenize`` keeps the whole prompt, else a message saying what the
    model sees. A frozen encoder also has ``params``: its weights, loaded with it (``None`` for trainable ones).
    """

    name: str
    max_len: int
    width: int
    trainable: bool

    def tokenize(self, prompts: Sequence[str]) -> np.ndarray: ...

    def encode(self, params, tokens: jax.Array) -> tuple[jax.Array, jax.Array]: ...

    def truncation_message(self, prompt: str) -> Optional[str]: ...


class PromptTruncatedWarning(UserWarning):
    """A prompt is longer than the text encoder reads: the model is conditioned on its beginning only."""


def truncated_prompt(prompt: str, max_len: int) -> Optional[str]:
    """What ``tokenize_bytes`` keeps of ``prompt`` when it cuts it (its first max_len - 1 UTF-8 bytes, after BOS;
    a character split by the cut is dropped), else None."""
    data = prompt.encode("utf-8")
    if len(data) <= max_len - 1:
        return None
    return data[: max_len - 1].decode("utf-8", errors="ignore")


def tokenize_bytes(prompts: Sequence[str], max_len: int) -> np.ndarray:
    """UTF-8 bytes with a BOS token, truncated/padded to max_len. The empty prompt "" (the CFG null prompt) is BOS."""
    if isinstance(prompts, str):
        raise TypeError("tokenize_bytes expects a sequence of prompts, not a single string")
    out = np.full((len(prompts), max_len), PAD, np.int32)
    for i, p in enumerate(prompts):
        ids = [BOS] + [b + BYTE_OFFSET for b in p.encode("utf-8")][: max_len - 1]
        out[i, : len(ids)] = ids
    return out


class _EncoderLayer(nnx.Module):
    def __init__(self, cfg: TextEncoderConfig, *, rngs, dtype, param_dtype):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = nnx.LayerNorm(cfg.width, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.attn = CrossAttention(cfg.width, cfg.width, cfg.num_heads, kv_names=("text_embed", "heads"), **kw)
        self.norm2 = nnx.LayerNorm(cfg.width, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.fc1 = dense(cfg.width, 4 * cfg.width, ("text_embed", "mlp"), **kw)
        self.fc2 = dense(4 * cfg.width, cfg.width, ("mlp", "text_embed"), **kw)

    def __call__(self, x, mask):
        h = self.norm1(x)
        x = x + self.attn(h, h, mask)
        return x + self.fc2(jax.nn.gelu(self.fc1(self.norm2(x))))


class ByteTextEncoder(nnx.Module):
    """Byte-level transformer encoder (bidirectional, learned positions), trainable with the DiT."""

    def __init__(self, cfg: TextEncoderConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.max_len, self.width = cfg.max_len, cfg.width
        self.embed = nnx.Embed(VOCAB_SIZE, cfg.width, rngs=rngs, dtype=dtype, param_dtype=param_dtype,
                               embedding_init=sharded_init(nnx.initializers.normal(0.02), ("vocab", "text_embed")))
        self.pos = nnx.Param(sharded_init(nnx.initializers.normal(0.02), ("length", "text_embed"))(
            rngs.params(), (cfg.max_len, cfg.width), param_dtype))
        self.layers = nnx.List([_EncoderLayer(cfg, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
                                for _ in range(cfg.depth)])
        self.norm = nnx.LayerNorm(cfg.width, rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def __call__(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        if tokens.shape[-1] != self.max_len:
            raise ValueError(f"tokens have length {tokens.shape[-1]}, this encoder expects max_len={self.max_len}")
        mask = (tokens != PAD).astype(jnp.int32)
        x = self.embed(tokens) + self.pos[...].astype(self.embed.embedding.dtype)
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x), mask


class ByteEncoder:
    """The ``TextEncoder`` of ``ByteTextEncoder``: trained with the DiT, parameters in the model's ``text_encoder``."""

    name = "byte"
    trainable = True

    def __init__(self, cfg: TextEncoderConfig, dtype=jnp.float32, param_dtype=jnp.float32):
        self.cfg, self.dtype, self.param_dtype = cfg, dtype, param_dtype
        self.max_len, self.width = cfg.max_len, cfg.width
        with parallel.outside_mesh():  # also when first built inside a training loop's mesh
            self._graphdef = nnx.graphdef(nnx.eval_shape(lambda: self.module(nnx.Rngs(0))))

    def module(self, rngs: nnx.Rngs) -> ByteTextEncoder:
        """A freshly initialised network (the trained model builds it as its ``text_encoder``)."""
        return ByteTextEncoder(self.cfg, rngs=rngs, dtype=self.dtype, param_dtype=self.param_dtype)

    def tokenize(self, prompts: Sequence[str]) -> np.ndarray:
        return tokenize_bytes(prompts, self.max_len)

    def truncation_message(self, prompt: str) -> Optional[str]:
        kept = truncated_prompt(prompt, self.max_len)
        if kept is None:
            return None
        return (f"prompt {prompt!r} is {len(prompt.encode('utf-8'))} bytes long, but this model's text encoder reads "
                f"only its first {self.max_len - 1} bytes (text max_len {self.max_len}, BOS included): the model sees "
                f"{kept!r}")

    def encode(self, params, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        return nnx.merge(self._graphdef, params)(tokens)


def minilm_encoder(cfg: TextEncoderConfig, dtype=jnp.float32, param_dtype=jnp.float32) -> TextEncoder:
    """The frozen BERT of ``models.bert`` (all-MiniLM-L6-v2 unless ``cfg.path``), kept in float32: its embeddings are
    computed once per prompt, so its dtype costs nothing per step."""
    from streamdit_jax.models.bert import MiniLMEncoder, default_minilm_directory
    path = cfg.path or default_minilm_directory()
    # concrete weights even when first asked for inside a traced function or a training loop's mesh
    with jax.ensure_compile_time_eval(), parallel.outside_mesh():
        encoder = MiniLMEncoder.from_directory(path, max_len=cfg.max_len)
    if encoder.width != cfg.width:
        raise ValueError(f"model.text.width={cfg.width} does not match the text encoder at {path!r}, whose hidden "
                         f"size is {encoder.width}")
    return encoder


def t5_encoder(cfg: TextEncoderConfig, dtype=jnp.float32, param_dtype=jnp.float32) -> TextEncoder:
    """The frozen T5-family encoder of ``models.t5`` (T5, T5 v1.1, mT5, umT5 -- Wan2.1's -- or ByT5) in the Hugging
    Face directory ``cfg.path`` (there is no bundled default), run in ``dtype``: states past each prompt are zero."""
    from streamdit_jax.models.t5 import T5TextEncoder
    if not cfg.path:
        raise ValueError("model.text.kind='t5' needs model.text.path: a local Hugging Face directory (config.json + "
                         "*.safetensors + tokenizer.json or spiece.model), e.g. Wan2.1's umT5-XXL, downloaded by you")
    with jax.ensure_compile_time_eval(), parallel.outside_mesh():
        encoder = T5TextEncoder.from_directory(cfg.path, max_len=cfg.max_len, dtype=dtype)
    if encoder.width != cfg.width:
        raise ValueError(f"model.text.width={cfg.width} does not match the text encoder at {cfg.path!r}, whose "
                         f"d_model is {encoder.width}")
    return encoder


TEXT_ENCODERS = {"byte": ByteEncoder, "minilm": minilm_encoder, "t5": t5_encoder}
assert tuple(TEXT_ENCODERS) == TEXT_ENCODER_KINDS, "models.config.TEXT_ENCODER_KINDS must list TEXT_ENCODERS"


def is_trainable(cfg: TextEncoderConfig) -> bool:
    """Whether the encoder ``cfg`` selects is trained with the DiT (known without loading any weights)."""
    return bool(getattr(TEXT_ENCODERS.get(cfg.kind), "trainable", False))


def make_text_encoder(cfg: TextEncoderConfig, dtype=jnp.float32, param_dtype=jnp.float32) -> TextEncoder:
    """The ``TextEncoder`` a config selects (``cfg.kind``, one of ``TEXT_ENCODERS``)."""
    if cfg.kind not in TEXT_ENCODERS:
        raise ValueError(f"model.text.kind={cfg.kind!r} is not a text encoder; valid: {sorted(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[cfg.kind](cfg, dtype=dtype, param_dtype=param_dtype)
