"""Stage 3 of the bundled recipe: fine-tune the turns-world model (shapes_latent_turns) so that a stream's START
follows the prompt's direction (issue 4; WORKSPACE.md "Session 8").

Why: a stream starts with a plain T2V pass (c = B), and the turns world's windows are captioned by their LAST frame
while ~62% of 16-frame windows hold a prompt switch somewhere. Trained on every window, T2V learned that the oldest
frames need not follow the caption; they are the stream's first frames, which followed the direction word only ~30%
of the time. Here T2V examples come only from windows whose caption holds at every frame (38% of windows in this
world); the other windows train the streaming chunk sizes, which is where the model learns to turn.

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
