"""The MiniLM-conditioned bundle, started from the byte-encoder bundle (experiments/checkpoints/shapes_latent): its
denoiser already renders and moves the shapes world; only the projections that read the text start fresh (their
input width is the encoder's: the cross-attention keys / values and the pooled-text projection), and everything
learns the new encoder's meanings on shapes_minilm's reworded turns-world captions.

  python -m experiments.train --config=experiments/configs/shapes_minilm_finetune.py --workdir=/tmp/minilm_ft \
      --init_from=experiments/checkpoints/shapes_latent --config.sample_every=0

Then shapes_minilm_steady_t2v (--init_from=/tmp/minilm_ft), as the byte recipe's stage 3.
"""
from experiments.configs import shapes_minilm

TEXT_READERS = (r"denoiser\.blocks\.(plain|shifted)\.cross\.(k|v)\.kernel", r"denoiser\.text_pool\.kernel")


def get_config(arg=None):
    c = shapes_minilm.get_config(arg)
    c.init_fresh = TEXT_READERS
    c.optim.learning_rate = 5e-4
    c.optim.warmup_steps = 100
    c.total_steps = 1500
    c.checkpoint_every = 250
    return c
