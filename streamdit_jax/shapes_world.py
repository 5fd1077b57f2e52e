"""The shapes world: procedurally rendered, captioned videos of unbounded length.

StreamDiT is trained with buffered flow matching on windows of real videos whose caption may change over time
(Sec. 3-4) and is judged on how well a stream follows a prompt schedule (Sec. 6, prompt switching). Offline and on a
CPU we need a world whose ground truth is known exactly: one or two coloured shapes glide across a plain background,
wrapping around the borders, and every now and then ONE attribute (shape, colour or motion) of one object changes.
The caption of each frame describes the objects as they are at that frame, so a window cut anywhere has a
well-defined prompt, and an evaluator can check a generated stream against `parse_caption` of its prompt.

Caption grammar (one clause per object, joined by " and "):

    a <colour> <shape> moving <motion>
    a red circle moving left and a blue square moving up

Everything is deterministic from a seed (``np.random.default_rng(seed)``); a `ShapesStream` renders the same
frames whether it is asked for them at once or in pieces.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import NamedTuple, Sequence

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "cyan", "magenta", "white")
COLOUR_RGB = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
}
MOTIONS = ("left", "right", "up", "down")
# (dx, dy) per frame in image coordinates (y grows downwards), in units of the configured speed.
MOTION_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

# Columns of `attributes` [T, max_objects, NUM_ATTRIBUTES]. Absent objects have PRESENT = 0 and -1 elsewhere.
PRESENT, SHAPE, COLOUR, MOTION, X, Y = range(6)
NUM_ATTRIBUTES = 6

_COLOUR_TABLE = np.array([COLOUR_RGB[c] for c in COLOURS], np.uint8)


@dataclasses.dataclass(frozen=True)
class ShapesWorldConfig:
    """Parameters of the shapes world.

    frame_size: square frames of frame_size x frame_size pixels.
    object_size: side of an object's bounding box in pixels (default frame_size // 4). Shapes are drawn around a
      centre pixel, so an even size draws one pixel smaller.
    speed: pixels per frame (an integer, so centres stay on the pixel grid and `attributes` are exact).
    max_objects: 1 or 2 (the rows of `attributes`).
    two_object_prob: probability that a clip has two objects (needs max_objects = 2). Default 0: one object.
    mean_switch_interval: mean number of frames between attribute switches (geometric intervals); math.inf: never.
    switch_weights: relative odds that a switch changes the (shape, colour, motion) of an object. Motion is the one
      attribute a denoiser can read off its own noisy frames when the caption agrees with them, so a world with
      more motion switches is what teaches a model to obey the caption's direction (WORKSPACE.md, "why direction was never learned").
    background: RGB of the plain background; must differ from every object colour.
    """

    frame_size: int = 32
    object_size: int | None = None
    speed: int = 1
    max_objects: int = 2
    two_object_prob: float = 0.0
    mean_switch_interval: float = 48.0
    background: tuple[int, int, int] = (16, 16, 16)
    switch_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self):
        if self.object_size is None:
            object.__setattr__(self, "object_size", self.frame_size // 4)
        object.__setattr__(self, "background", tuple(self.background))
        if not isinstance(self.frame_size, int) or self.frame_size < 6:
            raise ValueError(f"frame_size must be an int >= 6, got {self.frame_size!r}")
        if not isinstance(self.object_size, int) or not 3 <= self.object_size <= self.frame_size // 2:
            raise ValueError(f"object_size must be an int in [3, frame_size // 2 = {self.frame_size // 2}], "
                             f"got {self.object_size!r}")
        if not isinstance(self.speed, int) or not 1 <= self.speed < self.frame_size:
            raise ValueError(f"speed must be an int in [1, frame_size), got {self.speed!r}")
        if self.max_objects not in (1, 2):
            raise ValueError(f"max_objects must be 1 or 2, got {self.max_objects!r}")
        if not 0.0 <= self.two_object_prob <= 1.0:
            raise ValueError(f"two_object_prob must be in [0, 1], got {self.two_object_prob!r}")
        if self.two_object_prob > 0 and self.max_objects < 2:
            raise ValueError(f"two_object_prob={self.two_object_prob} needs max_objects=2, got {self.max_objects}")
        if not self.mean_switch_interval >= 1.0:
            raise ValueError(f"mean_switch_interval must be >= 1 frame (or math.inf), "
                             f"got {self.mean_switch_interval!r}")
        object.__setattr__(self, "switch_weights", tuple(float(w) for w in self.switch_weights))
        if (len(self.switch_weights) != 3 or not all(math.isfinite(w) and w >= 0 for w in self.switch_weights)
                or sum(self.switch_weights) <= 0):
            raise ValueError(f"switch_weights must be 3 finite weights >= 0 for (shape, colour, motion) with a "
                             f"positive sum, got {self.switch_weights!r}")
        if len(self.background) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in self.background):
            raise ValueError(f"background must be 3 ints in [0, 255], got {self.background!r}")
        if self.background in COLOUR_RGB.values():
            raise ValueError(f"background {self.background} equals an object colour; objects would be invisible")


class ObjectDescription(NamedTuple):
    """What a caption says about one object (compares equal to a plain (shape, colour, motion) tuple)."""

    shape: str
    colour: str
    motion: str


class ShapesClip(NamedTuple):
    """frames uint8 [T, H, W, 3]; captions: the caption active at each frame; attributes int32 [T, max_objects, 6]
    with columns (present, shape idx, colour idx, motion idx, centre x, centre y)."""

    frames: np.ndarray
    captions: list[str]
    attributes: np.ndarray


def describe(attributes_row: np.ndarray) -> list[ObjectDescription]:
    """The present objects of one frame's attributes [max_objects, 6], as names."""
    return [ObjectDescription(SHAPES[row[SHAPE]], COLOURS[row[COLOUR]], MOTIONS[row[MOTION]])
            for row in np.asarray(attributes_row) if row[PRESENT]]


def caption(attributes_row: np.ndarray) -> str:
    """The caption of one frame's attributes [max_objects, 6], e.g. "a red circle moving left"."""
    objects = describe(attributes_row)
    if not objects:
        raise ValueError("caption: no object is present in this attributes row")
    return " and ".join(f"a {o.colour} {o.shape} moving {o.motion}" for o in objects)


_CLAUSE = re.compile(rf"a ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)}) moving ({'|'.join(MOTIONS)})")


def parse_caption(text: str) -> list[ObjectDescription]:
    """Inverse of `caption`: the (shape, colour, motion) of each object, in caption order.

    Raises ValueError naming the text if it does not follow the grammar "a <colour> <shape> moving <motion>"
    (clauses joined by " and ").
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_caption expects a str, got {type(text).__name__}: {text!r}")
    out = []
    for clause in text.strip().split(" and "):
        m = _CLAUSE.fullmatch(clause)
        if m is None:
            raise ValueError(f"caption {text!r} does not follow the shapes-world grammar "
                             f"'a <colour> <shape> moving <motion>[ and ...]' (bad clause {clause!r})")
        colour, shape, motion = m.groups()
        out.append(ObjectDescription(shape, colour, motion))
    return out


def shape_mask(shape: int, dx: np.ndarray, dy: np.ndarray, half: int) -> np.ndarray:
    """Pixels of a shape from their wrapped offsets (dx, dy) to the centre pixel; `half` = bounding half-width."""
    adx, ady = np.abs(dx), np.abs(dy)
    if SHAPES[shape] == "square":
        return (adx <= half) & (ady <= half)
    if SHAPES[shape] == "circle":
        return dx * dx + dy * dy <= half * half + 0.5 * half
    # triangle, apex up: one pixel wide at dy = -half, 2 * half + 1 wide at dy = +half
    return (ady <= half) & (2 * adx <= dy + half)


class ShapesStream:
    """An endless shapes-world video. `take(n)` returns the next n frames; pieces concatenate to the same video
    that one big `take` (or `render`) gives, because randomness is drawn only at the start and at switches."""

    def __init__(self, seed: int, config: ShapesWorldConfig = ShapesWorldConfig()):
        self.config = config
        self._rng = np.random.default_rng(seed)
        rng, n_colours = self._rng, len(COLOURS)
        num = 2 if (rng.random() < config.two_object_prob and config.max_objects >= 2) else 1
        attrs = np.full((config.max_objects, NUM_ATTRIBUTES), -1, np.int32)
        attrs[:, PRESENT] = 0
        attrs[:num, PRESENT] = 1
        attrs[:num, SHAPE] = rng.integers(len(SHAPES), size=num)
        attrs[:num, COLOUR] = rng.choice(n_colours, size=num, replace=False)  # distinct: colour names an object
        attrs[:num, MOTION] = rng.integers(len(MOTIONS), size=num)
        attrs[:num, X:Y + 1] = rng.integers(config.frame_size, size=(num, 2))
        self._attrs = attrs
        self._num = num
        self._t = 0
        self._next_switch = self._interval()
        grid = np.arange(config.frame_size)
        self._ys, self._xs = np.meshgrid(grid, grid, indexing="ij")
        self._caption = caption(attrs)

    @property
    def frame_index(self) -> int:
        """Index of the next frame `take` will return."""
        return self._t

    def _interval(self) -> float:
        mean = self.config.mean_switch_interval
        return math.inf if math.isinf(mean) else int(self._rng.geometric(1.0 / mean))

    def _switch(self) -> None:
        """Change ONE attribute of one object to a different value (colours stay distinct between objects)."""
        rng, attrs = self._rng, self._attrs
        j = int(rng.integers(self._num))
        weights = np.asarray(self.config.switch_weights)
        if np.all(weights == weights[0]):
            which = int(rng.integers(3))  # the original draw: worlds with equal weights render as they always did
        else:
            which = int(rng.choice(3, p=weights / weights.sum()))
        column = (SHAPE, COLOUR, MOTION)[which]
        n_values = {SHAPE: len(SHAPES), COLOUR: len(COLOURS), MOTION: len(MOTIONS)}[column]
        taken = {int(v) for v in (attrs[:self._num, COLOUR] if column == COLOUR else [attrs[j, column]])}
        choices = [v for v in range(n_values) if v not in taken]
        attrs[j, column] = choices[int(rng.integers(len(choices)))]
        self._caption = caption(attrs)

    def _draw(self) -> np.ndarray:
        cfg = self.config
        size, half = cfg.frame_size, (cfg.object_size - 1) // 2
        frame = np.empty((size, size, 3), np.uint8)
        frame[:] = cfg.background
        for row in self._attrs[:self._num]:  # later objects are drawn on top
            dx = (self._xs - row[X] + size // 2) % size - size // 2  # wrapped: drawn across the borders
            dy = (self._ys - row[Y] + size // 2) % size - size // 2
            frame[shape_mask(row[SHAPE], dx, dy, half)] = _COLOUR_TABLE[row[COLOUR]]
        return frame

    def _move(self) -> None:
        cfg = self.config
        for row in self._attrs[:self._num]:
            sx, sy = MOTION_STEP[MOTIONS[row[MOTION]]]
            row[X] = (row[X] + sx * cfg.speed) % cfg.frame_size
            row[Y] = (row[Y] + sy * cfg.speed) % cfg.frame_size

    def take(self, num_frames: int) -> ShapesClip:
        """Render the next num_frames frames. A switch at frame t changes frame t's caption and attributes."""
        if num_frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")
        cfg = self.config
        frames = np.empty((num_frames, cfg.frame_size, cfg.frame_size, 3), np.uint8)
        attributes = np.empty((num_frames, cfg.max_objects, NUM_ATTRIBUTES), np.int32)
        captions = []
        for i in range(num_frames):
            if self._t == self._next_switch:
                self._switch()
                self._next_switch += self._interval()
            attributes[i] = self._attrs
            captions.append(self._caption)
            frames[i] = self._draw()
            self._move()
            self._t += 1
        return ShapesClip(frames, captions, attributes)


def render(seed: int, num_frames: int, config: ShapesWorldConfig = ShapesWorldConfig()) -> ShapesClip:
    """The first num_frames frames of the shapes-world video with this seed (deterministic)."""
    return ShapesStream(seed, config).take(num_frames)


def concatenate(clips: Sequence[ShapesClip]) -> ShapesClip:
    """Join consecutive pieces of one stream (e.g. from successive `ShapesStream.take` calls)."""
    return ShapesClip(np.concatenate([c.frames for c in clips]), [s for c in clips for s in c.captions],
                      np.concatenate([c.attributes for c in clips]))
