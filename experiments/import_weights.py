r"""Import a Wan2.1 text-to-video transformer as a streamdit_jax checkpoint (model.arch = "wan").

  python -m experiments.import_weights --source=Wan2.1-T2V-1.3B-Diffusers/transformer --output=ckpt/wan_1_3b \
      --text_encoder=umt5-xxl

--source: a diffusers WanTransformer3DModel folder (config.json + diffusion_pytorch_model.safetensors or shards with
their index) or the original Wan2.1 release's folder (same file names, WanModel config). Safetensors only; no PyTorch
is needed. --output gets model.safetensors + config.json + integrity.json: the safetensors export format that
restore.load_for_inference (and --init_from fine-tuning) reads. The library logic is
streamdit_jax.models.wan_weights.import_wan; bad input exits 2 with one line naming the file, tensor or field.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags

from experiments.flag_parsing import parse_flags
from streamdit_jax.models import wan_weights

flags.DEFINE_string("source", None, "Wan2.1 transformer folder (diffusers or original naming).")
flags.DEFINE_string("output", None, "Output checkpoint directory (replaced once the import is complete).")
flags.DEFINE_enum("dtype", "float32", sorted(wan_weights.STORAGE_DTYPES), "Storage dtype of model.safetensors.")
flags.DEFINE_enum("compute_dtype", "bfloat16", ["bfloat16", "float32"], "The saved config's model.dtype.")
flags.DEFINE_enum("param_dtype", "float32", ["bfloat16", "float32"], "The saved config's model.param_dtype.")
flags.DEFINE_string("text_encoder", "", "umT5 directory (Hugging Face layout) for model.text.path; may be set later.")
flags.DEFINE_bool("attend_text_padding", True, "Wan2.1's convention: attend to all text positions (states zeroed "
                  "past the prompt); --noattend_text_padding masks them out as StreamDiT does.")
flags.mark_flags_as_required(["source", "output"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        info = wan_weights.import_wan(FLAGS.source, FLAGS.output, dtype=FLAGS.dtype, text_encoder=FLAGS.text_encoder,
                                      attend_text_padding=FLAGS.attend_text_padding,
                                      model_overrides=dict(dtype=FLAGS.compute_dtype, param_dtype=FLAGS.param_dtype))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    size = os.path.getsize(os.path.join(FLAGS.output, "model.safetensors"))
    print(f"imported {FLAGS.source} ({info['naming']} naming, {int(info['params']):,} parameters) to {FLAGS.output}: "
          f"{size / 2**20:.1f} MiB {info['dtype']}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
