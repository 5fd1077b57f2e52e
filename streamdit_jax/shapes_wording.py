"""Free-text wordings of shapes-world captions, with a held-out vocabulary.

The shapes world captions every frame in one canonical grammar ("a red circle moving left"). A model conditioned on
a pretrained text encoder should follow what a caption MEANS, not its template, so training can show it each
caption in many wordings (``paraphrase``), while the evaluator keeps scoring against the canonical caption (a
schedule's ``targets``). Every attribute value and every template comes in two disjoint sets of words:

* ``"train"``: the canonical word (always first) and synonyms a training caption may use;
* ``"heldout"``: words, templates and sentence frames no training caption contains, to check that the model generalises through the
  encoder's knowledge of language ("A crimson ball drifting leftwards." for "a red circle moving left");
* ``"heldout_phrasing"``: the held-out templates, frames, verbs and direction words around the training colour and
  shape words ("A scarlet disc gliding leftwards.").

A wording is a sentence frame around one clause per object, template(article, colour word, shape word, verb,
direction phrase), the clauses joined with " and " as in the canonical grammar.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from streamdit_jax import shapes_world as shapes

SPLITS = ("train", "heldout", "heldout_phrasing")


class Vocabulary(NamedTuple):
    """The words of one split: per canonical value its wordings; verbs; clause templates with the fields {a} (the
    article of the word after it), {colour}, {shape}, {verb}, {direction}; sentence frames around the joined clauses
    ({}; a frame ending in "." also capitalises the sentence)."""

    colours: Mapping[str, Sequence[str]]
    shapes: Mapping[str, Sequence[str]]
    directions: Mapping[str, Sequence[str]]
    verbs: Sequence[str]
    templates: Sequence[str]
    frames: Sequence[str]


CANONICAL_TEMPLATE = "{a} {colour} {shape} {verb} {direction}"

TRAIN = Vocabulary(
    # Many synonyms per value, most of them single words that do not contain the canonical one ("scarlet", not only
    # "bright red"): the text readers then learn where a colour or shape lies in the encoder's space rather than
    # which few tokens name it, which is what an unseen word ("crimson") needs.
    colours={"red": ("red", "scarlet", "ruby", "cherry", "vermilion", "carmine", "garnet", "cardinal", "blood red",
                     "tomato red", "strawberry", "poppy", "cranberry", "fire engine red", "brick red", "rose red"),
             "green": ("green", "emerald", "forest green", "lime", "grass green", "leaf green", "kelly green",
                       "shamrock", "clover", "fern", "pine green", "apple green", "malachite", "bottle green",
                       "neon green", "moss green"),
             "blue": ("blue", "cobalt", "sapphire", "royal blue", "ultramarine", "denim", "midnight blue",
                      "electric blue", "cornflower", "lapis", "prussian blue", "deep blue", "dark blue", "blueberry",
                      "indigo", "klein blue"),
             "yellow": ("yellow", "golden", "canary", "gold", "butter yellow", "sunflower", "banana", "daffodil",
                        "buttercup", "dandelion", "sunshine yellow", "corn yellow", "bright yellow", "citrine",
                        "mustard", "saffron"),
             "cyan": ("cyan", "aqua", "turquoise", "aquamarine", "seafoam", "blue-green", "bright aqua",
                      "pale turquoise", "electric cyan", "caribbean", "lagoon", "cyan coloured"),
             "magenta": ("magenta", "pink", "fuchsia", "hot pink", "violet", "orchid", "cerise", "shocking pink",
                         "neon pink", "bubblegum pink", "raspberry", "amethyst", "plum", "mauve", "lilac"),
             "white": ("white", "snowy", "pale", "snow white", "cream", "pearl", "milk white", "chalk", "alabaster",
                       "bone white", "eggshell", "porcelain", "off-white", "linen", "frost", "paper white",
                       "lily white", "milky")},
    shapes={"circle": ("circle", "disc", "dot", "orb", "sphere", "round shape", "spot", "coin", "bubble", "ring"),
            "square": ("square", "box", "block", "tile", "four-sided shape", "crate", "slab", "checker"),
            "triangle": ("triangle", "wedge", "three-sided shape", "arrowhead", "delta", "cone", "spike",
                         "triangular shape", "shark fin")},
    directions={"left": ("left", "to the left", "leftward"), "right": ("right", "to the right", "rightward"),
                "up": ("up", "upward", "towards the top"), "down": ("down", "downward", "towards the bottom")},
    verbs=("moving", "going", "heading", "travelling", "sliding"),
    templates=(CANONICAL_TEMPLATE, "{colour} {shape}, {verb} {direction}",
               "{a} {shape} that is {colour}, {verb} {direction}", "{a} {colour} {shape} that is {verb} {direction}"),
    frames=("{}", "there is {}", "we see {}"),
)

HELDOUT = Vocabulary(
    colours={"red": ("crimson",), "green": ("jade",), "blue": ("navy",), "yellow": ("lemon",), "cyan": ("teal",),
             "magenta": ("purple",), "white": ("ivory",)},
    shapes={"circle": ("ball",), "square": ("cube",), "triangle": ("pyramid",)},
    directions={"left": ("leftwards",), "right": ("rightwards",), "up": ("upwards",), "down": ("downwards",)},
    verbs=("drifting", "gliding"),
    templates=(CANONICAL_TEMPLATE, "{a} {colour} {shape} which keeps {verb} {direction}"),
    frames=("{}.", "look: {}"),
)

# The held-out phrasing (templates, sentence frames, verbs, direction words) around the TRAINING colour and shape words:
# what a pretrained encoder's knowledge of language carries. Colour and shape synonyms it has never been trained on
# (HELDOUT) are a harder test, which MiniLM-L6 does not pass: a ridge readout of its embeddings fitted on the training
# words names 2 of the 7 held-out colour words (``experiments.probe_text_encoder``; BENCHMARKS.md).
HELDOUT_PHRASING = HELDOUT._replace(colours=TRAIN.colours, shapes=TRAIN.shapes)

VOCABULARIES = {"train": TRAIN, "heldout": HELDOUT, "heldout_phrasing": HELDOUT_PHRASING}


def vocabulary(split: str) -> Vocabulary:
    """The `Vocabulary` of ``split`` (one of SPLITS); ValueError names a bad split."""
    if split not in VOCABULARIES:
        raise ValueError(f"wording split must be one of {SPLITS}, got {split!r}")
    return VOCABULARIES[split]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def word_object(obj: shapes.ObjectDescription, template: str, rng: np.random.Generator, split: str = "train") -> str:
    """One object's clause: ``template`` filled with random words of ``split`` for its colour, shape and motion."""
    vocab = vocabulary(split)
    colour, shape = _pick(rng, vocab.colours[obj.colour]), _pick(rng, vocab.shapes[obj.shape])
    verb, direction = _pick(rng, vocab.verbs), _pick(rng, vocab.directions[obj.motion])
    # the article belongs to whichever word follows it in the template
    article = _article(shape if "{a} {shape}" in template else colour)
    return template.format(a=article, colour=colour, shape=shape, verb=verb, direction=direction)


def paraphrase(caption: str, rng: np.random.Generator, split: str = "train") -> str:
    """A random wording of a canonical caption (``shapes_world.parse_caption`` grammar) in ``split``'s words: one
    template and one sentence frame for the caption, fresh words for every object (clauses joined by " and ").

    Deterministic given ``rng``'s state. ValueError names a caption outside the grammar or a bad split."""
    vocab = vocabulary(split)
    objects = shapes.parse_caption(caption)
    template, frame = _pick(rng, vocab.templates), _pick(rng, vocab.frames)
    sentence = frame.format(" and ".join(word_object(obj, template, rng, split) for obj in objects))
    return sentence[:1].upper() + sentence[1:] if frame.endswith(".") else sentence


def words(split: str) -> set[str]:
    """Every lower-cased word (split on spaces, commas and full stops; template fields removed) ``split`` can put in a
    caption: what the held-out split must not share with training beyond function words."""
    vocab = vocabulary(split)
    phrases = [p for table in (vocab.colours, vocab.shapes, vocab.directions) for ps in table.values() for p in ps]
    phrases += list(vocab.verbs)
    for template in (*vocab.templates, *(f.replace("{}", " ") for f in vocab.frames)):
        for field in ("{a}", "{colour}", "{shape}", "{verb}", "{direction}"):
            template = template.replace(field, " ")
        phrases.append(template)
    return {w for p in phrases for w in p.lower().replace(",", " ").replace(".", " ").split()}


@dataclasses.dataclass(frozen=True)
class TrainingRewording:
    """The data pipeline's caption transform for ``data.caption_wording = "varied"``: keeps the canonical caption with
    probability ``canonical_prob`` (so canonical prompts stay in the training distribution), else ``paraphrase``s it
    with the train split's words. Called with grain's per-record generator, so a window's wording is reproducible."""

    canonical_prob: float = 0.25

    def __call__(self, caption: str, rng: np.random.Generator) -> str:
        if rng.random() < self.canonical_prob:
            return caption
        return paraphrase(caption, rng, "train")
