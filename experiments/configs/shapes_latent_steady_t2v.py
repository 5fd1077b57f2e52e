"""Stage 3 of the bundled recipe: fine-tune the turns-world model (shapes_latent_turns) with T2V examples (c = B)
drawn only from windows whose caption holds at every frame (issue 4; WORKSPACE.md "Session 8").

Why: the turns world's windows are captioned by their LAST frame while ~62% of 16-frame windows hold a prompt switch
somewhere, so plain T2V examples taught captions their older frames do not show. Here T2V comes only from the 38% of
windows without a switch; the others train the streaming chunk sizes, where the model learns to turn. Measured: the
stream then holds and reaches the prompt's direction within ~4-8 frames (drift_1024 direction no longer wanders),
while the T2V pass itself still draws motion that ignores the direction word; streams hide that with a one-buffer
warm-up (experiments.streaming's default).

  python -m experiments.train --config=experiments/configs/shapes_latent_steady_t2v.py --workdir=/tmp/steady \
      --init_from=/tmp/turns --config.sample_every=0
"""
from experiments.configs import shapes_latent_turns


def get_config(arg=None):
    c = shapes_latent_turns.get_config(arg)
    c.t2v_steady_windows = True
    # steady windows are T2V examples 70% of the time: ~27% of all examples, the rest share the streaming sizes
    c.chunk_probs = (0.05, 0.1, 0.05, 0.1, 0.7)
    c.optim.learning_rate = 3e-4
    c.optim.warmup_steps = 50
    c.total_steps = 850
    c.checkpoint_every = 150
    return c
