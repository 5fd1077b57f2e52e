"""evaluation.direction_probe (run by experiments.probe_direction): per-word direction accuracy of constant-prompt
streams, scored by the evaluator."""
import math

import pytest

from streamdit_jax.evaluation.direction_probe import format_probe, probe
from streamdit_jax import shapes_world as shapes

WORLD = shapes.ShapesWorldConfig(frame_size=32, max_objects=1, mean_switch_interval=math.inf)


class RenderedMotionStreamer:
    """Stands in for a model that ignores the direction word: it streams real shapes-world video whose object always
    moves ``motion`` (the first world seed from 100 * seed on with that motion), in 2-frame chunks."""

    def __init__(self, motion: str):
        self.motion = shapes.MOTIONS.index(motion)

    def frames(self, schedule, num_frames, seed):
        world_seed = 100 * seed
        while shapes.render(world_seed, 1, WORLD).attributes[0, 0, shapes.MOTION] != self.motion:
            world_seed += 1
        video = shapes.render(world_seed, num_frames, WORLD).frames
        for i in range(0, num_frames, 2):
            yield video[i:i + 2]


def test_a_model_that_always_moves_left_scores_one_for_left_and_zero_for_the_other_words():
    result = probe(RenderedMotionStreamer("left"), seeds=2, num_frames=32, start_frames=8)
    assert list(result) == list(shapes.MOTIONS)
    assert result["left"]["start"] >= 0.99 and result["left"]["later"] >= 0.99
    for word in ("right", "up", "down"):
        assert result[word]["start"] == 0.0 and result[word]["later"] == 0.0
    # the same seeds draw the same motion whatever the word: the letters show it
    assert all(r["motion"] == ["L" * 8, "L" * 8] for r in result.values())
    table = format_probe(result, 8)
    assert "left" in table and "LLLLLLLL LLLLLLLL" in table


def test_probe_rejects_a_start_longer_than_the_stream():
    with pytest.raises(ValueError, match="start_frames=16 must be in"):
        probe(RenderedMotionStreamer("up"), seeds=1, num_frames=16, start_frames=16)
