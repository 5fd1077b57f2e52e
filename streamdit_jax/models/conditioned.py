"""The trained model: the velocity model plus, when it is trained with it, the text encoder.

Parameters are ``{"denoiser": <velocity model>, "text_encoder": <trainable encoder>}``; the velocity model is the one
``ModelConfig.arch`` names (``denoiser_class``: StreamDiT, or Wan2.1's DiT). A frozen text encoder (kept outside,
its embeddings an input) leaves the second entry out. Checkpoints written before the velocity model stopped owning
its encoder keep the DiT's entries at the top level beside ``text_encoder`` (``restore`` reads both layouts).
"""
from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from streamdit_jax.models.config import ModelConfig
from streamdit_jax.models.dit import StreamDiT
from streamdit_jax.models.text import TextEncoder, is_trainable, make_text_encoder
from streamdit_jax.models.wan import WanTransformer

DENOISERS = {"streamdit": StreamDiT, "wan": WanTransformer}  # ModelConfig.arch -> the velocity model's class


def denoiser_class(cfg: ModelConfig):
    """The velocity model class of ``cfg.arch``; every one is called as (x, tau [b, F], text, text_mask) -> u."""
    return DENOISERS[cfg.arch]


@functools.lru_cache(maxsize=8)
def text_encoder_of(cfg: ModelConfig) -> TextEncoder:
    """The text encoder a model config selects, in the model's dtypes (one object per config: a frozen encoder
    loads its weights once)."""
    return make_text_encoder(cfg.text, dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype)


def text_params_of(encoder: TextEncoder, model_params):
    """What ``encoder.encode`` takes as params: the trained model's ``"text_encoder"`` entry for a trainable
    encoder, the encoder's own ``params`` for a frozen one."""
    return model_params["text_encoder"] if encoder.trainable else encoder.params


class ConditionedModel(nnx.Module):
    """``denoiser`` (the velocity model of ``cfg.arch``) + ``text_encoder`` (a trainable encoder's network, else
    None)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        # built first: the same random stream initialises the same weights as before the split. A frozen encoder
        # is not built here (its weights are loaded once, outside any traced init).
        self.text_encoder = text_encoder_of(cfg).module(rngs) if is_trainable(cfg.text) else None
        self.denoiser = denoiser_class(cfg)(cfg, rngs=rngs)
        self.cfg = cfg

    def __call__(self, x: jax.Array, tau: jax.Array, text: jax.Array, text_mask: jax.Array) -> jax.Array:
        """The velocity (``StreamDiT.__call__`` / ``WanTransformer.__call__``)."""
        return self.denoiser(x, tau, text, text_mask)

    def tokenize(self, prompts) -> np.ndarray:
        """The text encoder's tokens of ``prompts`` (host side)."""
        return text_encoder_of(self.cfg).tokenize(prompts)

    def encode_text(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(embeddings, mask) of tokens by the trained encoder; a frozen encoder's embeddings come from outside."""
        if self.text_encoder is None:
            raise ValueError(f"model.text.kind={self.cfg.text.kind!r} is a frozen text encoder: encode with its "
                             f"TextEncoder.encode and pass the embeddings in")
        return self.text_encoder(tokens)
