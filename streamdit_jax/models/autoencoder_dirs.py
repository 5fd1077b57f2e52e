"""Autoencoder directories a config's ``autoencoder`` may name: a learned per-frame one (experiments.train_autoencoder:
config.json + params.msgpack) or Wan2.1's causal video VAE (a diffusers ``AutoencoderKLWan`` folder: config.json +
safetensors). One place decides which, loads it (once per process: a Wan VAE is 250-500 MB) and names it."""
from __future__ import annotations

import functools
import json
import os

from streamdit_jax.models import learned_autoencoder
from streamdit_jax.models.wan_vae import CLASS_NAME as WAN_CLASS_NAME


def is_wan_vae_dir(path: str) -> bool:
    """A diffusers folder whose config.json names ``AutoencoderKLWan``."""
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        return False
    try:
        with open(config, encoding="utf-8") as f:
            return json.load(f).get("_class_name") == WAN_CLASS_NAME
    except (OSError, ValueError, AttributeError):
        return False


def is_autoencoder_dir(path: str) -> bool:
    """A learned autoencoder's or a Wan VAE's directory."""
    return learned_autoencoder.is_autoencoder_dir(path) or is_wan_vae_dir(path)


@functools.lru_cache(maxsize=4)
def load_video_autoencoder(path: str):
    """The ``VideoAutoencoder`` in ``path`` (float32). ValueError naming the path when it holds neither kind."""
    if is_wan_vae_dir(path):
        from streamdit_jax.models.wan_vae import load_wan_vae
        return load_wan_vae(path)
    return learned_autoencoder.load_autoencoder(path)


def latent_channels(autoencoder) -> int:
    """Channels of a loaded autoencoder's latents."""
    if hasattr(autoencoder, "latent_channels"):
        return autoencoder.latent_channels()
    return autoencoder.config.z_dim


def autoencoder_fingerprint(path: str) -> str:
    """Identity of the autoencoder in ``path`` (12 hex digits; equal for copies of one directory): the learned one's
    parameters and statistics, a Wan VAE's config and weight files."""
    if is_wan_vae_dir(path):
        from streamdit_jax.data.caption_embeddings import directory_fingerprint
        return directory_fingerprint(path)[:12]
    return learned_autoencoder.autoencoder_fingerprint(path)
