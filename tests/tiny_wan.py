"""Tiny random stand-ins of the three open-weight parts of Wan2.1, written by the reference libraries in the layout
of a Wan2.1-T2V-*-Diffusers download (``write_tiny_wan_pipeline``): transformer/ (diffusers
``WanTransformer3DModel``), text_encoder/ (transformers ``UMT5EncoderModel``), tokenizer/ (a tokenizer.json) and vae/
(diffusers ``AutoencoderKLWan``, test_wan_vae.write_tiny_reference).

Sizes match ``experiments/configs/wan_streamdit.py:tiny`` (model "wan_tiny": 4 latent channels, width 32 = 2 heads of
16, FFN 64, 2 layers, 32 frequency features; text states 32 wide)."""
import json
import os

TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
                   text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2)
UMT5 = dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2, relative_attention_num_buckets=8,
            relative_attention_max_distance=16, dropout_rate=0.0)
SCALE = 0.1  # random weights of this scale: a model far from any initialisation, still well-conditioned


def _randomized(torch, model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * SCALE)
    return model


def write_tiny_wan_transformer(directory: str, seed: int = 0) -> str:
    """A tiny random diffusers WanTransformer3DModel saved with save_pretrained (what
    experiments.import_weights reads from Wan2.1-T2V-*-Diffusers/transformer)."""
    import torch
    from diffusers import WanTransformer3DModel

    _randomized(torch, WanTransformer3DModel(**TRANSFORMER), seed).save_pretrained(directory)
    return directory


def unigram_tokenizer(words):
    """(tokenizers.Tokenizer, its pieces): a Unigram model over ``words``, then their characters, with T5's <pad> 0,
    </s> 1, <unk> 2 and Metaspace pre-tokenizer / decoder, as Hugging Face's T5 tokenizer files are (no
    post-processor)."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import Unigram

    pieces = ([("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)] + [(f"▁{w}", -1.0) for w in words]
              + [(c, -3.0) for c in sorted(set("".join(words)))])
    tok = Tokenizer(Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tok, pieces


def write_tiny_umt5(directory: str, texts, seed: int = 1, tokenizer_directory: str = "") -> str:
    """A tiny random transformers UMT5EncoderModel saved with save_pretrained, plus a tokenizer.json (a Unigram
    model over the words of ``texts``, then their characters, as Hugging Face's T5 tokenizer files are) in
    ``tokenizer_directory`` (default: beside the weights)."""
    import torch
    import transformers
    from tokenizers import processors

    tok, pieces = unigram_tokenizer(sorted({w for t in texts for w in t.split()}))
    config = transformers.UMT5Config(vocab_size=len(pieces), **UMT5)
    _randomized(torch, transformers.UMT5EncoderModel(config), seed).save_pretrained(directory)
    tok.post_processor = processors.TemplateProcessing(single=["$A", "</s>"], special_tokens=[("</s>", 1)])
    tokenizer_directory = tokenizer_directory or directory
    os.makedirs(tokenizer_directory, exist_ok=True)
    tok.save(f"{tokenizer_directory}/tokenizer.json")
    with open(f"{tokenizer_directory}/tokenizer_config.json", "w") as f:
        json.dump({"tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, f)
    return directory


def write_tiny_wan_pipeline(root: str, texts) -> str:
    """``root`` laid out as Wan2.1-T2V-1.3B-Diffusers: transformer/, text_encoder/ + tokenizer/ (umT5 knowing the
    words of ``texts``), vae/; every part tiny and random."""
    from test_wan_vae import write_tiny_reference
    write_tiny_wan_transformer(os.path.join(root, "transformer"))
    write_tiny_umt5(os.path.join(root, "text_encoder"), texts, tokenizer_directory=os.path.join(root, "tokenizer"))
    write_tiny_reference(os.path.join(root, "vae"))
    return root
