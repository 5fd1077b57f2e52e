"""Wan2.1 transformer weights -> a streamdit_jax safetensors checkpoint (``model.safetensors`` + ``config.json``, the
directory ``restore.load_for_inference`` and ``sampling.pretrained.load_streamer`` read), without PyTorch.

Sources: a diffusers ``WanTransformer3DModel`` folder (``config.json`` + ``diffusion_pytorch_model.safetensors``, or
shards listed by ``diffusion_pytorch_model.safetensors.index.json``; e.g. the ``transformer/`` folder of
Wan-AI/Wan2.1-T2V-1.3B-Diffusers), or the original Wan2.1 release (``WanModel``: Wan-AI/Wan2.1-T2V-1.3B's
config.json with dim / num_heads / in_dim and the same safetensors names; an optional ``model.diffusion_model.``
prefix is stripped). The naming is read off the tensors. Text-to-video models only: the image-conditioned variants
(I2V / FLF2V: image_dim, added_kv_proj_dim, or model_type != "t2v") are refused.

Name map (ours under ``denoiser.``: diffusers | original):
  patch_embed: patch_embedding | patch_embedding (Conv3d [D, C, 1, ph, pw] -> kernel [(ph pw C), D])
  time_embed.fc1 / fc2: condition_embedder.time_embedder.linear_1 / linear_2 | time_embedding.0 / 2
  time_embed.proj: condition_embedder.time_proj | time_projection.1
  text_embed.fc1 / fc2: condition_embedder.text_embedder.linear_1 / linear_2 | text_embedding.0 / 2
  blocks.attn.{q,k,v,out,q_norm,k_norm}: blocks.i.attn1.{to_q,to_k,to_v,to_out.0,norm_q,norm_k}
                                         | blocks.i.self_attn.{q,k,v,o,norm_q,norm_k}
  blocks.cross.*: blocks.i.attn2.* | blocks.i.cross_attn.*
  blocks.cross_norm: blocks.i.norm2 (affine) | blocks.i.norm3
  blocks.fc1 / fc2: blocks.i.ffn.net.0.proj / ffn.net.2 | blocks.i.ffn.0 / 2
  blocks.modulation: blocks.i.scale_shift_table [1, 6, D] | blocks.i.modulation
  head.table / head.out: scale_shift_table [1, 2, D] / proj_out | head.modulation / head.head
The original release names its cross-attention norm ``norm3`` and the (parameter-free) feed-forward norm ``norm2``;
diffusers swaps the two names. Torch Linear weights [out, in] become kernels [in, out]; the per-block tensors are
stacked along a leading layer axis (the scanned blocks of ``models.wan``).

Every check (folder, config, the set of tensor names, every shape and dtype) runs on the safetensors headers before
any tensor is read; the output is written one stacked tensor at a time (``write_safetensors``) into a staging
directory that replaces OUTPUT only when complete.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, Callable, Mapping, Optional

import ml_dtypes
import numpy as np
from flax import nnx

from streamdit_jax import weights
from streamdit_jax.configs import TrainConfig
from streamdit_jax.models.config import ModelConfig, TextEncoderConfig
from streamdit_jax.models.factory import abstract_model
from streamdit_jax.models.hf_checkpoint import SafetensorsFile, indexed_weight_files
from streamdit_jax.restore import CONFIG_JSON
from streamdit_jax.training import export

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_FILE = "diffusion_pytorch_model.safetensors.index.json"
NAMINGS = ("diffusers", "original")
ORIGINAL_PREFIX = "model.diffusion_model."
WAN_EPS = 1e-6  # models.wan.EPS

# how a source tensor becomes ours: torch Linear weight (transposed), as is, a [1, n, D] table, the patch Conv3d
LINEAR, VECTOR, TABLE, PATCH = "linear", "vector", "table", "patch"

# (our path under denoiser.blocks, diffusers name under blocks.i, original name under blocks.i, kind)
_ATTENTION = [("q", "to_q", "q"), ("k", "to_k", "k"), ("v", "to_v", "v"), ("out", "to_out.0", "o")]
BLOCK_NAMES: list[tuple[str, str, str, str]] = []
for _ours, _diffusers, _original in (("attn", "attn1", "self_attn"), ("cross", "attn2", "cross_attn")):
    for _o, _d, _w in _ATTENTION:
        BLOCK_NAMES.append((f"{_ours}.{_o}.kernel", f"{_diffusers}.{_d}.weight", f"{_original}.{_w}.weight", LINEAR))
        BLOCK_NAMES.append((f"{_ours}.{_o}.bias", f"{_diffusers}.{_d}.bias", f"{_original}.{_w}.bias", VECTOR))
    for _n in ("q", "k"):
        BLOCK_NAMES.append((f"{_ours}.{_n}_norm.scale", f"{_diffusers}.norm_{_n}.weight",
                            f"{_original}.norm_{_n}.weight", VECTOR))
BLOCK_NAMES += [
    ("cross_norm.scale", "norm2.weight", "norm3.weight", VECTOR),  # the swap: see the module docstring
    ("cross_norm.bias", "norm2.bias", "norm3.bias", VECTOR),
    ("fc1.kernel", "ffn.net.0.proj.weight", "ffn.0.weight", LINEAR),
    ("fc1.bias", "ffn.net.0.proj.bias", "ffn.0.bias", VECTOR),
    ("fc2.kernel", "ffn.net.2.weight", "ffn.2.weight", LINEAR),
    ("fc2.bias", "ffn.net.2.bias", "ffn.2.bias", VECTOR),
    ("modulation", "scale_shift_table", "modulation", TABLE),
]
# (our path under denoiser, diffusers name, original name, kind)
TOP_NAMES: list[tuple[str, str, str, str]] = [
    ("patch_embed.kernel", "patch_embedding.weight", "patch_embedding.weight", PATCH),
    ("patch_embed.bias", "patch_embedding.bias", "patch_embedding.bias", VECTOR),
    ("time_embed.fc1.kernel", "condition_embedder.time_embedder.linear_1.weight", "time_embedding.0.weight", LINEAR),
    ("time_embed.fc1.bias", "condition_embedder.time_embedder.linear_1.bias", "time_embedding.0.bias", VECTOR),
    ("time_embed.fc2.kernel", "condition_embedder.time_embedder.linear_2.weight", "time_embedding.2.weight", LINEAR),
    ("time_embed.fc2.bias", "condition_embedder.time_embedder.linear_2.bias", "time_embedding.2.bias", VECTOR),
    ("time_embed.proj.kernel", "condition_embedder.time_proj.weight", "time_projection.1.weight", LINEAR),
    ("time_embed.proj.bias", "condition_embedder.time_proj.bias", "time_projection.1.bias", VECTOR),
    ("text_embed.fc1.kernel", "condition_embedder.text_embedder.linear_1.weight", "text_embedding.0.weight", LINEAR),
    ("text_embed.fc1.bias", "condition_embedder.text_embedder.linear_1.bias", "text_embedding.0.bias", VECTOR),
    ("text_embed.fc2.kernel", "condition_embedder.text_embedder.linear_2.weight", "text_embedding.2.weight", LINEAR),
    ("text_embed.fc2.bias", "condition_embedder.text_embedder.linear_2.bias", "text_embedding.2.bias", VECTOR),
    ("head.table", "scale_shift_table", "head.modulation", TABLE),
    ("head.out.kernel", "proj_out.weight", "head.head.weight", LINEAR),
    ("head.out.bias", "proj_out.bias", "head.head.bias", VECTOR),
]


# ---------------------------------------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class WanSourceConfig:
    """The architecture fields of a Wan2.1 transformer's config.json (either naming)."""

    naming: str  # the config's own style: "diffusers" (WanTransformer3DModel) or "original" (WanModel)
    patch: tuple[int, int, int]
    dim: int
    num_heads: int
    in_channels: int
    out_channels: int
    text_dim: int
    freq_dim: int
    ffn_dim: int
    num_layers: int
    text_len: int = 512

    def model_config(self, **overrides) -> ModelConfig:
        """Our ModelConfig (arch "wan") of this transformer; ``overrides`` replace any of its fields (e.g. dtype).
        The text encoder is umT5 ("t5", ``text_dim`` wide, ``text_len`` tokens); its ``path`` is the user's."""
        text = TextEncoderConfig(kind="t5", width=self.text_dim, max_len=self.text_len)
        fields = dict(arch="wan", latent_channels=self.in_channels, patch=self.patch, width=self.dim,
                      depth=self.num_layers, num_heads=self.num_heads, ffn_dim=self.ffn_dim,
                      time_freq_dim=self.freq_dim, text=text, attend_text_padding=True, dtype="bfloat16",
                      param_dtype="float32", remat=True)
        fields.update(overrides)
        return ModelConfig(**fields)


def _get(config: Mapping[str, Any], key: str, default, path: str):
    value = config.get(key, default)
    if value is None:
        raise ValueError(f"{path!r} lacks {key!r}, which a Wan2.1 transformer config needs")
    return value


def read_source_config(directory: str) -> WanSourceConfig:
    """The WanSourceConfig of DIRECTORY/config.json; ValueError naming the file and the field for anything this
    importer cannot represent (image conditioning, another eps, no cross-attention norm, window attention, ...)."""
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"no Wan transformer config: {path!r} does not exist (a diffusers WanTransformer3DModel "
                         f"folder, e.g. Wan2.1-T2V-1.3B-Diffusers/transformer, or the original Wan2.1 release)")
    try:
        with open(path) as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path!r} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path!r} does not hold a JSON object")
    naming = "diffusers" if "num_attention_heads" in config or "attention_head_dim" in config else "original"
    if naming == "diffusers":
        heads = _get(config, "num_attention_heads", 40, path)
        refuse = {k: config.get(k) for k in ("image_dim", "added_kv_proj_dim", "pos_embed_seq_len")
                  if config.get(k) is not None}
        fields = dict(dim=heads * _get(config, "attention_head_dim", 128, path), num_heads=heads,
                      in_channels=_get(config, "in_channels", 16, path),
                      out_channels=config.get("out_channels") or config.get("in_channels", 16),
                      text_dim=_get(config, "text_dim", 4096, path), freq_dim=_get(config, "freq_dim", 256, path),
                      ffn_dim=_get(config, "ffn_dim", 13824, path), num_layers=_get(config, "num_layers", 40, path))
        qk_norm_ok = config.get("qk_norm", "rms_norm_across_heads") == "rms_norm_across_heads"
    else:
        model_type = config.get("model_type", "t2v")
        refuse = {"model_type": model_type} if model_type != "t2v" else {}
        if tuple(config.get("window_size", (-1, -1))) != (-1, -1):
            refuse["window_size"] = config["window_size"]
        fields = dict(dim=_get(config, "dim", None, path), num_heads=_get(config, "num_heads", None, path),
                      in_channels=_get(config, "in_dim", 16, path), out_channels=_get(config, "out_dim", 16, path),
                      text_dim=_get(config, "text_dim", 4096, path), freq_dim=_get(config, "freq_dim", 256, path),
                      ffn_dim=_get(config, "ffn_dim", None, path), num_layers=_get(config, "num_layers", None, path),
                      text_len=_get(config, "text_len", 512, path))
        qk_norm_ok = config.get("qk_norm", True) is True
    if refuse:
        raise ValueError(f"{path!r} describes an image-conditioned or otherwise unsupported Wan variant ({refuse}); "
                         f"only text-to-video transformers are imported")
    if not qk_norm_ok:
        raise ValueError(f"{path!r}: qk_norm={config.get('qk_norm')!r}; models.wan implements Wan2.1's RMSNorm "
                         f"across heads only")
    if not config.get("cross_attn_norm", True):
        raise ValueError(f"{path!r}: cross_attn_norm=false; models.wan always has the affine norm before "
                         f"cross-attention (Wan2.1's setting)")
    if float(config.get("eps", WAN_EPS)) != WAN_EPS:
        raise ValueError(f"{path!r}: eps={config['eps']}; models.wan uses Wan2.1's {WAN_EPS}")
    if fields["out_channels"] != fields["in_channels"]:
        raise ValueError(f"{path!r}: out channels {fields['out_channels']} differ from in channels "
                         f"{fields['in_channels']}; a velocity model predicts in the latent space it reads")
    patch = tuple(int(p) for p in config.get("patch_size", (1, 2, 2)))
    if len(patch) != 3 or patch[0] != 1:
        raise ValueError(f"{path!r}: patch_size={list(patch)}; per-frame noise levels need a temporal patch of 1 "
                         f"(models.wan / ModelConfig)")
    return WanSourceConfig(naming=naming, patch=patch, **fields)


# --------------------------------------------------------------------------------------------------------- tensors
def weight_files(directory: str) -> list[str]:
    """The safetensors files of a Wan folder: diffusion_pytorch_model.safetensors, else the shards its index names,
    else the folder's single *.safetensors file. ValueError naming what is missing."""
    files = indexed_weight_files(directory, WEIGHTS_FILE, WEIGHTS_INDEX_FILE)
    if files is not None:
        return files
    single, index = os.path.join(directory, WEIGHTS_FILE), os.path.join(directory, WEIGHTS_INDEX_FILE)
    found = sorted(n for n in os.listdir(directory) if n.endswith(".safetensors"))
    if len(found) == 1:
        return [os.path.join(directory, found[0])]
    others = [n for n in os.listdir(directory) if n.endswith((".bin", ".pth", ".pt", ".ckpt"))]
    raise ValueError(f"no Wan transformer weights: neither {single!r} nor {index!r} exists"
                     + (f" ({len(found)} other .safetensors files and no index)" if found else "")
                     + (f" ({', '.join(others)} found: only safetensors are read)" if others else ""))


@dataclasses.dataclass
class Source:
    """Where one of our parameters comes from: one source tensor per stacked layer (or one), and how it converts."""

    files: list[SafetensorsFile]
    names: list[str]
    kind: str
    stacked: bool


def _convert(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == LINEAR:
        return x.T
    if kind == TABLE:
        return x.reshape(x.shape[1:])
    if kind == PATCH:  # [D, C, 1, ph, pw] -> [(1 ph pw C), D]: the order of models.wan's patchify
        return x.transpose(2, 3, 4, 1, 0).reshape(-1, x.shape[0])
    return x


def _source_shape(ours: tuple, kind: str, cfg: ModelConfig) -> tuple:
    """The shape a source tensor must have to become ``ours`` (one layer's shape for stacked parameters)."""
    if kind == LINEAR:
        return tuple(reversed(ours))
    if kind == TABLE:
        return (1,) + ours
    if kind == PATCH:
        return (cfg.width, cfg.latent_channels) + cfg.patch
    return ours


def source_names(depth: int, naming: str) -> dict[str, tuple[list[str], str, bool]]:
    """{our dotted name (``denoiser.``...): (source tensor names, kind, stacked)} for a ``depth``-block Wan."""
    col = NAMINGS.index(naming) + 1
    out = {f"denoiser.{row[0]}": ([row[col]], row[3], False) for row in TOP_NAMES}
    for row in BLOCK_NAMES:
        out[f"denoiser.blocks.{row[0]}"] = ([f"blocks.{i}.{row[col]}" for i in range(depth)], row[3], True)
    return out


def _tensor_index(files: list[str]) -> tuple[dict[str, tuple[SafetensorsFile, str]], str]:
    """{name without the original release's optional prefix: (reader, name in the file)} and the naming the names
    follow."""
    index: dict[str, tuple[SafetensorsFile, str]] = {}
    for path in files:
        reader = SafetensorsFile(path)
        for name in reader.keys():
            key = name[len(ORIGINAL_PREFIX):] if name.startswith(ORIGINAL_PREFIX) else name
            index.setdefault(key, (reader, name))
    if any(k.startswith("condition_embedder.") for k in index):
        return index, "diffusers"
    if any(k.startswith(("time_embedding.", "time_projection.")) for k in index):
        return index, "original"
    raise ValueError(f"{files[0]!r} holds no Wan2.1 transformer tensors (neither diffusers' condition_embedder.* nor "
                     f"the original release's time_embedding.*); first names: {sorted(index)[:4]}")


def plan(directory: str, cfg: ModelConfig, expected: Mapping[str, tuple]) -> tuple[dict[str, Source], str]:
    """({our dotted name: Source}, naming) for the tensors of DIRECTORY, checked against ``expected`` ({our name:
    shape} of the model ``cfg`` describes) on the headers alone: ValueError naming the file and the first missing,
    unexpected, mis-shaped or non-floating tensor."""
    files = weight_files(directory)
    index, naming = _tensor_index(files)
    where = files[0] if len(files) == 1 else os.path.join(directory, WEIGHTS_INDEX_FILE)
    names = source_names(cfg.depth, naming)
    if set(names) != set(expected):  # the name map and models.wan disagree: a bug here, not in the input
        raise AssertionError(f"wan_weights' name map differs from models.wan's parameters: "
                             f"{sorted(set(names) ^ set(expected))[:4]}")
    wanted = {n for sources, _, _ in names.values() for n in sources}
    missing = [n for sources, _, _ in names.values() for n in sources if n not in index]
    if missing:
        raise ValueError(f"{where!r} lacks the Wan ({naming} naming) tensor {missing[0]!r}"
                         + (f" and {len(missing) - 1} more ({missing[1:4]}{' ...' if len(missing) > 4 else ''})"
                            if len(missing) > 1 else "")
                         + f"; {os.path.join(directory, CONFIG_FILE)!r} says num_layers={cfg.depth}")
    unexpected = sorted(set(index) - wanted)
    if unexpected:
        raise ValueError(f"{where!r} holds tensors a text-to-video Wan with {cfg.depth} layers does not have: "
                         f"{unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
    out = {}
    for ours, (sources, kind, stacked) in names.items():
        shape = tuple(expected[ours][1:] if stacked else expected[ours])
        want = _source_shape(shape, kind, cfg)
        readers = []
        for name in sources:
            reader, stored = index[name]
            x = reader.get(stored)  # a memory-map view: nothing is read yet
            if tuple(x.shape) != want:
                raise ValueError(f"{reader.path!r}: tensor {stored!r} has shape {tuple(x.shape)}, "
                                 f"{os.path.join(directory, CONFIG_FILE)!r} implies {want}")
            if not (np.issubdtype(x.dtype, np.floating) or x.dtype == ml_dtypes.bfloat16):
                raise ValueError(f"{reader.path!r}: tensor {stored!r} has dtype {x.dtype}, expected a floating type")
            readers.append(reader)
        out[ours] = Source(readers, [index[n][1] for n in sources], kind, stacked)
    return out, naming


def read_param(source: Source, shape: tuple, dtype) -> np.ndarray:
    """One of our parameters in ``dtype``, read from its source tensor(s) (stacked layer by layer)."""
    if not source.stacked:
        return np.ascontiguousarray(_convert(source.files[0].get(source.names[0]), source.kind).astype(dtype))
    out = np.empty(shape, dtype)
    for i, (reader, name) in enumerate(zip(source.files, source.names)):
        out[i] = _convert(reader.get(name), source.kind)
    return out


# ------------------------------------------------------------------------------------------------------- writing
_ST_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(ml_dtypes.bfloat16): "BF16"}


def write_safetensors(path: str, entries: list[tuple[str, tuple, Any, Callable[[], np.ndarray]]],
                      metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes a safetensors file tensor by tensor: ``entries`` = (name, shape, dtype, produce) with ``produce()``
    returning that array; only one tensor is in memory at a time (safetensors' own writer takes them all at once).
    Layout: 8-byte little-endian header size, JSON header padded with spaces to 8 bytes, the tensors' bytes in
    entry order."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, shape, dtype, _ in entries:
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header[name] = {"dtype": _ST_DTYPES[np.dtype(dtype)], "shape": list(shape), "data_offsets": [offset,
                                                                                                     offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name, shape, dtype, produce in entries:
            x = produce()
            if tuple(x.shape) != tuple(shape) or x.dtype != np.dtype(dtype):
                raise AssertionError(f"{name}: produced {x.shape} {x.dtype}, declared {shape} {np.dtype(dtype)}")
            f.write(np.ascontiguousarray(x).tobytes())


# -------------------------------------------------------------------------------------------------------- import
STORAGE_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


def _overlaps(a: str, b: str) -> bool:
    a, b = os.path.realpath(a), os.path.realpath(b)
    return a == b or a.startswith(b + os.sep) or b.startswith(a + os.sep)


def imported_config(source: WanSourceConfig, text_encoder: str = "", attend_text_padding: bool = True,
                    model_overrides: Optional[Mapping[str, Any]] = None):
    """The TrainConfig of an imported checkpoint: the Wan model, its umT5 directory ``text_encoder`` (may be
    empty: set model.text.path later; the import saves no path, only what that encoder is: text_encoder.json) and no autoencoder of ours (autoencoder_factor 0: Wan's VAE latents come from
    outside)."""
    overrides = dict(model_overrides or {})
    model = source.model_config(attend_text_padding=attend_text_padding, **overrides)
    if text_encoder:
        model = model.replace(text=dataclasses.replace(model.text, path=os.path.abspath(text_encoder)))
    return TrainConfig(model=model, autoencoder_factor=0)


def import_wan(source: str, output: str, *, dtype: str = "float32", text_encoder: str = "",
               attend_text_padding: bool = True, model_overrides: Optional[Mapping[str, Any]] = None) -> dict:
    """Imports the Wan2.1 transformer in the folder SOURCE (module docstring) into OUTPUT: ``model.safetensors``
    (our dotted names, stored as ``dtype``), ``config.json`` (a TrainConfig whose model has arch "wan") and the
    integrity record, published atomically (an existing OUTPUT is replaced only when the new one is complete).
    ``model_overrides``: ModelConfig fields (dtype, param_dtype, remat, attention_impl, ...). Returns the
    description stored as the file's metadata. ValueError naming the problem, before anything is read or written."""
    if not os.path.isdir(source):
        raise ValueError(f"no Wan transformer folder: {source!r} does not exist or is not a directory")
    if _overlaps(source, output):
        raise ValueError(f"output {output!r} overlaps source {source!r}: the output is replaced as a whole, so it must "
                         f"lie outside the source folder (and not contain it)")
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype={dtype!r} is invalid: valid are {sorted(STORAGE_DTYPES)}")
    src = read_source_config(source)
    cfg = imported_config(src, text_encoder, attend_text_padding, model_overrides)
    _, abstract = abstract_model(cfg.model)
    expected = {name: tuple(a.shape) for name, a in weights.flatten(nnx.to_pure_dict(abstract)).items()}
    sources, naming = plan(source, cfg.model, expected)
    store = np.dtype(STORAGE_DTYPES[dtype])
    entries = [(name, expected[name], store, lambda s=sources[name], shape=expected[name]: read_param(s, shape, store))
               for name in sorted(expected)]
    info = {"format": "streamdit_jax", "source": os.path.basename(os.path.normpath(os.path.abspath(source))),
            "naming": naming, "step": "0", "dtype": dtype,
            "params": str(sum(int(np.prod(s, dtype=np.int64)) for s in expected.values()))}
    staging = export.staging_directory(output)
    try:
        write_safetensors(os.path.join(staging, weights.SAFETENSORS_FILE), entries, info)
        with open(os.path.join(staging, CONFIG_JSON), "w") as f:
            f.write(json.dumps(export.export_config(cfg), indent=1) + "\n")
        export.write_text_encoder_record(cfg, staging)
        export.seal_export(staging)
        export.publish(staging, output)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return info
