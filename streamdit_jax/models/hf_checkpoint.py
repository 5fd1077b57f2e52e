"""Reading Hugging Face model directories without PyTorch or transformers: config.json, safetensors weights (one
``model.safetensors`` or shards listed by ``model.safetensors.index.json``), tokenizer.json; and the frozen
``models.text.TextEncoder`` built from them. Shared by ``models.bert`` and ``models.t5``.

``SafetensorsFile`` reads the safetensors format (an 8-byte little-endian header length, a JSON header of
``{name: {dtype, shape, data_offsets}}``, then the raw little-endian data) as numpy memory maps, bfloat16 included
(safetensors' own numpy reader refuses it), so a multi-gigabyte checkpoint is read one tensor (or one shard of one
tensor) at a time. ``load_safetensors`` fills a model's pure-dict params from such files by a name map, reporting a
missing, unexpected or mis-shaped tensor by name.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILE = "tokenizer.json"

# Hugging Face's ACT2FN names -> jax (BERT's "gelu" is the exact erf form; "gelu_new" the tanh approximation).
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_python": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


def read_config(path: str, what: str) -> dict[str, Any]:
    """The dictionary of a config.json; ValueError naming the file when it is absent or not JSON."""
    if not os.path.isfile(path):
        raise ValueError(f"no {what} config: {path!r} does not exist")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path!r} is not valid JSON: {e}") from None


def attention_bias(mask: jax.Array) -> jax.Array:
    """[b, L] key mask (1 = token) -> additive bias [b, 1, 1, L] in float32: 0 on tokens, float32's most negative
    value on padding (as transformers' eager attention; a row with no token at all then attends uniformly instead of
    NaN)."""
    return jnp.where(mask.astype(bool), 0.0, jnp.finfo(jnp.float32).min)[:, None, None, :].astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------- weights
def indexed_weight_files(directory: str, single_name: str, index_name: str) -> list[str] | None:
    """[single_name] when that file is in ``directory``, else the shards the safetensors index ``index_name`` names
    (each checked: ValueError naming a missing one), else None."""
    single = os.path.join(directory, single_name)
    index = os.path.join(directory, index_name)
    if os.path.isfile(single):
        return [single]
    if not os.path.isfile(index):
        return None
    with open(index) as f:
        try:
            weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{index!r} is not a safetensors index (no weight_map): {e}") from None
    files = [os.path.join(directory, name) for name in dict.fromkeys(weight_map.values())]
    for path in files:
        if not os.path.isfile(path):
            raise ValueError(f"{index!r} names {os.path.basename(path)!r}, but {path!r} does not exist")
    return files


def weight_files(directory: str, what: str) -> list[str]:
    """The safetensors files of a directory: model.safetensors, else the shards its index names (each checked)."""
    files = indexed_weight_files(directory, WEIGHTS_FILE, WEIGHTS_INDEX_FILE)
    if files is not None:
        return files
    single = os.path.join(directory, WEIGHTS_FILE)
    index = os.path.join(directory, WEIGHTS_INDEX_FILE)
    others = [n for n in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")
              if os.path.isfile(os.path.join(directory, n))]
    raise ValueError(f"no {what} weights: neither {single!r} nor {index!r} exists"
                     + (f" ({', '.join(others)} found: only safetensors are read; convert with transformers' "
                        "save_pretrained(..., safe_serialization=True))" if others else ""))


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
                       "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2, "I64": np.int64,
                       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


class SafetensorsFile:
    """The tensors of one .safetensors file as read-only numpy views of a memory map (nothing is read until used)."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else -1
            try:
                header = json.loads(f.read(size)) if 0 < size <= os.path.getsize(path) - 8 else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                header = None
        if not isinstance(header, dict):
            raise ValueError(f"{path!r} is not a safetensors file (no readable header)")
        header.pop("__metadata__", None)
        self._header, self._start = header, 8 + size
        self._map = np.memmap(path, dtype=np.uint8, mode="r") if header else None

    def keys(self) -> list[str]:
        return list(self._header)

    def get(self, name: str) -> np.ndarray:
        entry = self._header[name]
        dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{self.path!r}: tensor {name!r} has the unsupported dtype {entry['dtype']}")
        begin, end = entry["data_offsets"]
        raw = self._map[self._start + begin: self._start + end]
        return raw.view(dtype).reshape(entry["shape"])  # safetensors is little-endian, as x86 and ARM hosts


def set_leaf(tree: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def get_leaf(tree, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


def _to_jax(x: np.ndarray, dtype, sharding) -> jax.Array:
    if sharding is None:
        return jnp.asarray(x, dtype=dtype)
    target = np.dtype(dtype)  # each device reads only its slice of the memory map
    return jax.make_array_from_callback(x.shape, sharding, lambda index: np.asarray(x[index], dtype=target))


def load_safetensors(directory: str, wanted: dict[str, tuple[tuple, bool]], params: dict, *, what: str,
                     canonical: Callable[[str], Optional[str]], dtype,
                     unexpected: Optional[Callable[[list[str]], Optional[str]]] = None,
                     missing_hint: Optional[Callable[[list[str]], str]] = None, shardings=None) -> dict:
    """Fills ``params`` (a model's pure-dict params; abstract leaves give the expected shapes) from the safetensors of
    ``directory``, one tensor at a time, cast to ``dtype`` (placed with the same-structured ``shardings`` when given).

    ``wanted``: {canonical tensor name: (path in params, transpose)}; torch Linear weights are [out, in] and nnx
    kernels [in, out], hence the transpose. ``canonical(file name)`` gives a file's tensor its canonical name, or None
    to ignore it (heads, a decoder); the first file tensor of a canonical name is used. Canonical names that are not
    in ``wanted`` go to ``unexpected``, which returns an error message (or None to accept them). ValueError naming the
    file and the tensor: missing (with ``missing_hint(missing)`` appended), unexpected, mis-shaped, not floating."""
    config_path = os.path.join(directory, CONFIG_FILE)
    files = weight_files(directory, what)
    found: dict[str, tuple[SafetensorsFile, str]] = {}
    unused = []
    for path in files:
        reader = SafetensorsFile(path)
        for name in reader.keys():
            key = canonical(name)
            if key is None:
                continue
            if key in wanted:
                found.setdefault(key, (reader, name))
            else:
                unused.append(key)
    where = files[0] if len(files) == 1 else os.path.join(directory, WEIGHTS_INDEX_FILE)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise ValueError(f"{where!r} lacks the {what} tensor {missing[0]!r}"
                         + (f" (and {len(missing) - 1} more: {missing[1:4]}{' ...' if len(missing) > 4 else ''})"
                            if len(missing) > 1 else "") + (missing_hint(missing) if missing_hint else ""))
    message = unexpected(unused) if unexpected is not None and unused else None
    if message:
        raise ValueError(f"{where!r} {message}")
    for key, (target, transpose) in wanted.items():
        reader, name = found[key]
        x = reader.get(name)
        expected = tuple(get_leaf(params, target).shape)
        if tuple(x.T.shape if transpose else x.shape) != expected:
            shown = tuple(reversed(expected)) if transpose else expected
            raise ValueError(f"{reader.path!r}: tensor {name!r} has shape {tuple(x.shape)}, {config_path!r} implies "
                             f"{shown}")
        if not np.issubdtype(x.dtype, np.floating) and x.dtype.name not in ("bfloat16", "float8_e4m3fn",
                                                                             "float8_e5m2"):
            raise ValueError(f"{reader.path!r}: tensor {name!r} has dtype {x.dtype}, expected a floating type")
        sharding = None if shardings is None else get_leaf(shardings, target)
        set_leaf(params, target, _to_jax(x.T if transpose else x, dtype, sharding))
    return params


# ---------------------------------------------------------------------------------------------------- tokenizer
class PaddedTokenizer:
    """Each prompt's ids (``rows``: special tokens included, truncated to ``max_len``), padded with ``pad_id``."""

    max_len: int
    pad_id: int

    def rows(self, prompts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def __call__(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids int32 [n, max_len], attention mask int32 [n, max_len], 1 on the prompt's tokens)."""
        if isinstance(prompts, str):
            raise TypeError("the tokenizer expects a sequence of prompts, not a single string")
        rows = self.rows(list(prompts))
        ids = np.full((len(rows), self.max_len), self.pad_id, np.int32)
        mask = np.zeros((len(rows), self.max_len), np.int32)
        for i, row in enumerate(rows):
            ids[i, : len(row)], mask[i, : len(row)] = row, 1
        return ids, mask


class JsonTokenizer(PaddedTokenizer):
    """tokenizer.json (``tokenizers``) with truncation and padding to ``max_len``: the tokenizer's own special tokens
    (BERT: [CLS] tokens [SEP]), or tokens followed by ``append_id`` when given (T5: tokens </s>, replacing the file's
    post-processor as transformers' T5 tokenizer does), then ``pad_id`` (default: the file's padding id, else
    [PAD]'s).

    Special-token strings typed in a prompt (e.g. "[PAD]", "</s>") are tokenized as ordinary text, so a prompt can
    never inject padding or separators (transformers' tokenizers match them as specials unless
    ``split_special_tokens=True``; on prompts without them the ids are the same)."""

    def __init__(self, path: str, max_len: int, pad_id: Optional[int] = None, append_id: Optional[int] = None):
        from tokenizers import Tokenizer

        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len={max_len!r} must be an integer >= 1")
        if not os.path.isfile(path):
            raise ValueError(f"no tokenizer: {path!r} does not exist")
        self.path, self.max_len = path, max_len
        self._full = Tokenizer.from_file(path)  # untruncated: how long a prompt really is
        file_padding = self._full.padding
        if pad_id is None:
            pad_id = file_padding["pad_id"] if file_padding else self._full.token_to_id("[PAD]")
        if pad_id is None:
            raise ValueError(f"{path!r}: no padding token (no padding section and no [PAD] token); pass pad_id")
        pad_token = self._full.id_to_token(pad_id)
        if pad_token is None:
            raise ValueError(f"{path!r}: the pad id {pad_id} is not in the vocabulary")
        self.pad_id, self.pad_token = int(pad_id), pad_token
        self._tok = Tokenizer.from_file(path)
        for tok in (self._full, self._tok):
            tok.no_truncation()
            tok.no_padding()
            tok.encode_special_tokens = True
            if append_id is not None:
                tok.post_processor = _append_processor(tok, append_id, path)
        self.num_special = self._full.num_special_tokens_to_add(False)
        if max_len < self.num_special:
            raise ValueError(f"max_len={max_len} leaves no room for the {self.num_special} special tokens {path!r} "
                             "adds")
        self._tok.enable_truncation(max_len)

    def rows(self, prompts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self._tok.encode_batch(prompts)] if prompts else []

    def num_tokens(self, prompt: str) -> int:
        """How many tokens the whole prompt is, special tokens included (before truncation)."""
        return len(self._full.encode(prompt).ids)

    def kept_text(self, prompt: str) -> Optional[str]:
        """The beginning of ``prompt`` that survives truncation (None when it all does); a word split into pieces
        may be cut inside."""
        enc = self._full.encode(prompt)
        if len(enc.ids) <= self.max_len:
            return None
        content = [i for i, special in enumerate(enc.special_tokens_mask) if not special]
        keep = self.max_len - self.num_special
        if keep <= 0:
            return ""
        return prompt[: enc.offsets[content[keep - 1]][1]]


def _append_processor(tok, token_id: int, path: str):
    from tokenizers import processors

    token = tok.id_to_token(token_id)
    if token is None:
        raise ValueError(f"{path!r}: the end-of-sequence id {token_id} is not in the vocabulary")
    return processors.TemplateProcessing(single=["$A", token], pair=["$A", token, "$B", token],
                                         special_tokens=[(token, token_id)])


# -------------------------------------------------------------------------------------------------- text encoder
def masked_states(graphdef, params, tokens: jax.Array, pad_id: int) -> tuple[jax.Array, jax.Array]:
    """Runs an encoder ``nnx.merge(graphdef, params)(tokens, mask)`` with mask = tokens != pad and zeroes its hidden
    states past each prompt (float32): (states [n, L, width], mask int32 [n, L])."""
    mask = (tokens != pad_id).astype(jnp.int32)
    hidden = nnx.merge(graphdef, params)(tokens, mask)
    return jnp.where(mask[..., None].astype(bool), hidden.astype(jnp.float32), 0.0), mask


class FrozenTextEncoder:
    """A frozen encoder with its own ``params`` and a tokenizer padding with ``tokenizer.pad_id`` as a
    ``models.text.TextEncoder``: embeddings [n, max_len, width] are the encoder's last hidden state (float32), zero
    at padded positions; the mask is tokens != pad. ``specials`` names the tokens the tokenizer adds (messages)."""

    trainable = False
    specials = "special tokens"

    def __init__(self, name: str, config, graphdef, params, tokenizer, width: int):
        self.name, self.config, self.graphdef, self.params, self.tokenizer = name, config, graphdef, params, tokenizer
        self.max_len, self.width = tokenizer.max_len, width
        self._jitted = None

    def tokenize(self, prompts: Sequence[str]) -> np.ndarray:
        return self.tokenizer(prompts)[0]

    def encode(self, params, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        if tokens.shape[-1] != self.max_len:
            raise ValueError(f"tokens have length {tokens.shape[-1]}, this encoder expects max_len={self.max_len}")
        return masked_states(self.graphdef, params, tokens, self.tokenizer.pad_id)

    def __call__(self, prompts: Sequence[str]) -> tuple[jax.Array, jax.Array]:
        """Host convenience: tokenize + jitted encode with this encoder's own params."""
        if self._jitted is None:
            self._jitted = jax.jit(self.encode)
        return self._jitted(self.params, jnp.asarray(self.tokenize(prompts)))

    def truncation_message(self, prompt: str) -> Optional[str]:
        kept = self.tokenizer.kept_text(prompt)
        if kept is None:
            return None
        return (f"prompt {prompt!r} is {self.tokenizer.num_tokens(prompt)} tokens long, but the {self.name} text "
                f"encoder reads only {self.max_len} tokens (text max_len {self.max_len}, {self.specials} included): "
                f"the model sees {kept!r}")
