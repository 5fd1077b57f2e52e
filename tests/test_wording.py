"""shapes_wording: free-text wordings of shapes-world captions mean the canonical caption, the held-out split shares no
word with training, rewording is reproducible, and the data pipeline rewords only the text (not the windows)."""
import itertools
import re

import numpy as np
import pytest

from streamdit_jax import shapes_wording as wording
from streamdit_jax import shapes_world as shapes
from streamdit_jax.configs import DataConfig


def _meaning(text: str, split: str) -> list[tuple[str, str, str]]:
    """Reads a wording back: per " and "-joined clause, the ONE colour, shape and motion value whose wording of
    ``split`` occurs in it as whole words (the longest match wins: 'forest green' over 'green'). Independent of
    paraphrase's code: it only knows the vocabulary."""
    vocab = wording.vocabulary(split)
    objects = []
    for clause in text.lower().rstrip(".").split(" and "):
        found = []
        for table in (vocab.shapes, vocab.colours, vocab.directions):
            hits = {value: max(len(p) for p in phrases if re.search(rf"(^|[\s,:]){re.escape(p)}($|[\s,.])", clause))
                    for value, phrases in table.items()
                    if any(re.search(rf"(^|[\s,:]){re.escape(p)}($|[\s,.])", clause) for p in phrases)}
            assert hits, f"no {table} word in clause {clause!r} of {text!r}"
            longest = max(hits.values())
            values = [v for v, n in hits.items() if n == longest]
            assert len(values) == 1, f"clause {clause!r} names {values}"
            found.append(values[0])
        objects.append(tuple(found))
    return objects


CANONICAL = [f"a {c} {s} moving {m}" for c, s, m in itertools.product(shapes.COLOURS, shapes.SHAPES, shapes.MOTIONS)]


@pytest.mark.parametrize("split", wording.SPLITS)
def test_every_wording_means_its_canonical_caption(split):
    rng = np.random.default_rng(0)
    two = [f"{a} and {b}" for a, b in zip(CANONICAL, reversed(CANONICAL))]
    seen = set()
    for caption in CANONICAL + two:
        for _ in range(6):
            text = wording.paraphrase(caption, rng, split)
            assert _meaning(text, split) == list(shapes.parse_caption(caption)), (caption, text)
            seen.add(text)
    assert len(seen) > 3 * len(CANONICAL), "the wordings barely vary"


def test_the_held_out_split_shares_no_word_with_training_and_training_includes_the_canonical_wording():
    assert wording.words("train") & wording.words("heldout") == set()
    train_attribute_words = {w for v in (wording.TRAIN.colours, wording.TRAIN.shapes) for ps in v.values() for p in ps
                             for w in p.split()}
    assert wording.words("train") & wording.words("heldout_phrasing") == train_attribute_words
    assert wording.vocabulary("heldout").templates != wording.vocabulary("train").templates
    # the canonical wording is one of training's: the canonical word first in every table, its template and frame
    train = wording.vocabulary("train")
    for table, values in ((train.colours, shapes.COLOURS), (train.shapes, shapes.SHAPES),
                          (train.directions, shapes.MOTIONS)):
        assert [table[v][0] for v in values] == list(values)
    assert (train.verbs[0], train.templates[0], train.frames[0]) == ("moving", wording.CANONICAL_TEMPLATE, "{}")
    rng = np.random.default_rng(1)
    drawn = {wording.paraphrase("a red circle moving left", rng, "train") for _ in range(2000)}
    heldout = {wording.paraphrase("a red circle moving left", rng, "heldout") for _ in range(200)}
    assert "A crimson ball drifting leftwards." in heldout
    assert not heldout & drawn


def test_wording_is_a_pure_function_of_the_generator_state():
    texts = [[wording.paraphrase(c, np.random.default_rng(seed), "train") for c in CANONICAL[:20]] for seed in (3, 3, 4)]
    assert texts[0] == texts[1] and texts[0] != texts[2]


def test_the_articles_agree_with_the_next_word():
    rng = np.random.default_rng(2)
    for _ in range(500):
        text = wording.paraphrase("a white triangle moving up and a cyan square moving down", rng, "train")
        for article, word in re.findall(r"\b(a|an) (\w)", text):
            assert (article == "an") == (word in "aeiou"), text


def test_the_training_rewording_keeps_the_canonical_caption_at_its_rate():
    rng = np.random.default_rng(5)
    reword = DataConfig(caption_wording="varied", canonical_caption_prob=0.25).caption_rewording()
    kept = np.mean([reword("a blue square moving up", rng) == "a blue square moving up" for _ in range(4000)])
    # canonical kept 25% + drawn again by chance: 75% x 1/(4 templates x 3 frames x 16 x 8 x 5 verbs x 3)
    assert 0.23 < kept < 0.28, kept
    assert DataConfig().caption_rewording() is None


def test_bad_wording_settings_are_named():
    with pytest.raises(ValueError, match="data.caption_wording='fancy'.*canonical"):
        DataConfig(caption_wording="fancy")
    with pytest.raises(ValueError, match="caption_wording='varied' needs data.name='shapes_world'"):
        DataConfig(name="video_folder", video_dir="/x", caption_wording="varied")
    with pytest.raises(ValueError, match="canonical_caption_prob"):
        DataConfig(canonical_caption_prob=1.5)
    with pytest.raises(ValueError, match="wording split must be one of"):
        wording.paraphrase("a red circle moving left", np.random.default_rng(0), "test")
    with pytest.raises(ValueError, match="does not follow the shapes-world grammar"):
        wording.paraphrase("a red ball", np.random.default_rng(0))
