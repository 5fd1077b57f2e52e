"""Does a frozen text encoder's embedding space carry the shapes world's attribute words?

A DiT conditioned on a frozen encoder can only follow a word it never saw in training (a held-out colour word such
as "crimson") if the encoder already places that word near the training words of the same value. This module
measures that before any DiT is trained, with a linear readout of the encoder's embeddings:

* every wording of an attribute value (``shapes_wording``'s train and held-out words, e.g. colour "red": "red",
  "scarlet", ..., "crimson") is put in a few caption templates where only that word varies; its feature is the
  mean over the prompt's tokens (the encoder's mask) of the token states, averaged over the templates;
* a ridge readout (standardised features, one-hot targets) fitted on the TRAIN split's words predicts the value of
  each HELD-OUT word (``heldout_accuracy``: what the bundled model's held-out-word prompts need), and, fitted on all
  words but one, the value of the one left out (``leave_one_out_accuracy``: the same question over the whole
  vocabulary, a less noisy number than a handful of held-out words).

A readout fitted on the DiT's training vocabulary is close to what the DiT's text readers can learn from it; when it
misnames a held-out word, so will the model.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Sequence

import numpy as np

from streamdit_jax import shapes_wording as wording
from streamdit_jax import shapes_world as shapes

# Caption templates per attribute, the probed word in the one slot; the other attributes vary between templates so
# the readout cannot lean on a fixed context.
TEMPLATES = {
    "colour": ("a {} circle moving left", "{} square, heading up", "a triangle that is {}, going down",
               "there is a {} circle sliding to the right", "we see a {} square travelling downward"),
    "shape": ("a red {} moving left", "green {}, heading up", "a {} that is blue, going down",
              "there is a yellow {} sliding to the right", "we see a white {} travelling downward"),
    "motion": ("a red circle moving {}", "green square, heading {}", "a triangle that is blue, going {}",
               "there is a yellow circle sliding {}", "we see a white square travelling {}"),
}
_A_BEFORE_VOWEL = re.compile(r"\ba (?=[aeiou])")  # "a emerald circle" -> "an emerald circle"
VALUES = {"colour": shapes.COLOURS, "shape": shapes.SHAPES, "motion": shapes.MOTIONS}


def _table(vocab: wording.Vocabulary, attribute: str) -> Mapping[str, Sequence[str]]:
    return {"colour": vocab.colours, "shape": vocab.shapes, "motion": vocab.directions}[attribute]


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """One attribute's probe: ``words`` / ``labels`` (index into the attribute's values) / ``split`` per word;
    ``heldout_predicted`` the readout fitted on the train words, for each held-out word; ``loo_predicted`` each word
    predicted by the readout fitted on all the others."""

    attribute: str
    words: tuple[str, ...]
    labels: np.ndarray
    split: tuple[str, ...]
    heldout_predicted: np.ndarray
    loo_predicted: np.ndarray

    @property
    def values(self) -> tuple[str, ...]:
        return VALUES[self.attribute]

    def _heldout(self) -> np.ndarray:
        return np.array([s == "heldout" for s in self.split])

    @property
    def heldout_accuracy(self) -> float:
        return float(np.mean(self.heldout_predicted == self.labels[self._heldout()]))

    @property
    def leave_one_out_accuracy(self) -> float:
        return float(np.mean(self.loo_predicted == self.labels))

    @property
    def chance(self) -> float:
        return 1.0 / len(self.values)

    def loo_misnamed(self) -> list[str]:
        """'word -> predicted value' for each word the leave-one-out readout misnames."""
        return [f"{w} -> {self.values[p]}" for w, p, y in zip(self.words, self.loo_predicted, self.labels) if p != y]

    def heldout_readings(self) -> list[str]:
        """'word -> predicted value' for each held-out word, e.g. 'crimson -> red'."""
        words = [w for w, h in zip(self.words, self._heldout()) if h]
        return [f"{w} -> {self.values[p]}" for w, p in zip(words, self.heldout_predicted)]


def vocabulary_words(attribute: str) -> tuple[list[str], np.ndarray, list[str]]:
    """(words, value index per word, split per word) of ``attribute`` over the train and held-out splits."""
    if attribute not in VALUES:
        raise ValueError(f"attribute must be one of {sorted(VALUES)}, got {attribute!r}")
    words, labels, splits = [], [], []
    for split in ("train", "heldout"):
        for value, phrases in _table(wording.vocabulary(split), attribute).items():
            for phrase in phrases:
                words.append(phrase)
                labels.append(VALUES[attribute].index(value))
                splits.append(split)
    return words, np.asarray(labels), splits


def word_features(encoder, words: Sequence[str], templates: Sequence[str], batch: int = 256) -> np.ndarray:
    """float64 [len(words), width]: per word, the mean over its prompt's tokens of ``encoder``'s token states,
    averaged over ``templates`` (each with one ``{}`` slot). ``encoder`` is a frozen ``models.text.TextEncoder``."""
    import jax

    prompts = [_A_BEFORE_VOWEL.sub("an ", t.format(w)) for w in words for t in templates]
    encode = jax.jit(encoder.encode)
    pooled = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        tokens = encoder.tokenize(chunk + [""] * (batch - len(chunk)))  # one compiled shape
        states, mask = encode(encoder.params, tokens)
        states, mask = np.asarray(states, np.float64), np.asarray(mask, np.float64)
        pooled.append(((states * mask[..., None]).sum(1) / mask.sum(1, keepdims=True))[:len(chunk)])
    return np.concatenate(pooled).reshape(len(words), len(templates), -1).mean(1)


def ridge_readout(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, num_classes: int,
                  ridge: float = 0.3) -> np.ndarray:
    """Predicted class of each row of ``x_test`` by ridge regression onto centred one-hot targets, fitted on
    standardised ``x_train`` (statistics of the training rows; ``ridge`` scaled by their count). The targets' mean
    (the class sizes) is left out of the prediction: a word is named by its features, not by the commoner class."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / std, (x_test - mean) / std
    targets = np.eye(num_classes)[y_train]
    weights = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ (targets - targets.mean(0)))
    return (b @ weights).argmax(1)


def leave_one_out(features: np.ndarray, labels: np.ndarray, num_classes: int, ridge: float = 0.3) -> np.ndarray:
    """Each row's class predicted by the readout fitted on every other row."""
    rows = np.arange(len(labels))
    return np.array([ridge_readout(features[rows != i], labels[rows != i], features[i:i + 1], num_classes, ridge)[0]
                     for i in rows])


def probe(encoder, attribute: str, ridge: float = 0.3) -> ProbeResult:
    """The probe of ``attribute`` ("colour", "shape" or "motion") on ``encoder`` (see the module docstring)."""
    words, labels, splits = vocabulary_words(attribute)
    features = word_features(encoder, words, TEMPLATES[attribute])
    train = np.array([s == "train" for s in splits])
    num_classes = len(VALUES[attribute])
    heldout = ridge_readout(features[train], labels[train], features[~train], num_classes, ridge)
    return ProbeResult(attribute, tuple(words), labels, tuple(splits), heldout,
                       leave_one_out(features, labels, num_classes, ridge))
