"""Stage 3 of the MiniLM-conditioned bundle: shapes_latent_steady_t2v's fine-tune (T2V examples only from windows
whose caption holds throughout) on shapes_minilm's encoder and reworded captions.

  python -m experiments.train --config=experiments/configs/shapes_minilm_steady_t2v.py --workdir=/tmp/minilm_steady \
      --init_from=/tmp/minilm --config.sample_every=0
"""
from experiments.configs import shapes_latent_steady_t2v, shapes_minilm


def get_config(arg=None):
    c = shapes_latent_steady_t2v.get_config(arg)
    base = shapes_minilm.get_config(arg)
    c.model.text = base.model.text
    c.data.caption_wording = base.data.caption_wording
    return c
