"""Coloured blobs in shapes-world frames: pixel colour classes, connected components on the torus, blob statistics.

The shapes world draws flat-coloured objects on a plain background and wraps them around the borders, so an object
is a connected set of pixels of one colour on the torus (the frame with opposite edges glued). Generated frames are
imperfect (noisy colours, blur), so a pixel is given an object colour only when it lies within `threshold` (RGB
Euclidean distance) of that colour and is nearer to it than to any other reference (the 7 object colours and the
background); everything else is "unknown" and belongs to no blob. The nearest pair of references (an object colour
and the dark background) are ~240 apart, so the default 100 keeps every class well separated while tolerating
generation noise of ~40% of the range; on uniform noise only ~3% of pixels fall near each object colour, which
almost never form a blob of an object's size.

Everything is vectorised over all frames at once: labelling is one sparse connected-components call on the graph of
same-colour neighbours (edges built with wrap-around `np.roll`), and the statistics are `np.bincount`s over
component ids.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from streamdit_jax import shapes_world as shapes

NUM_COLOURS = len(shapes.COLOURS)
BACKGROUND, UNKNOWN = 0, -1  # pixel classes; object colour i (index into shapes.COLOURS) is class i + 1
_COLOUR_TABLE = np.array([shapes.COLOUR_RGB[c] for c in shapes.COLOURS], np.float32)
# 8-connectivity: four offsets, each used in both directions.
_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))


class PixelClasses(NamedTuple):
    """strict: int8 [T, H, W] class of each pixel, 1 + colour index, BACKGROUND (0), or UNKNOWN (-1) when farther
    than the threshold from its nearest reference. nearest: the same without the threshold (never UNKNOWN); blob
    shapes use it to take back blurred or noisy rims (see `shape_classifier`)."""

    strict: np.ndarray
    nearest: np.ndarray


def classify_pixels(frames: np.ndarray, background=(16, 16, 16), threshold: float = 100.0,
                    block: int = 512) -> PixelClasses:
    """Nearest reference colour (background or one of the 7 object colours) of every pixel, `block` frames at a
    time (bounded memory on long streams)."""
    refs = np.concatenate([np.asarray(background, np.float32)[None], _COLOUR_TABLE])  # [8, 3]
    strict = np.empty(frames.shape[:-1], np.int8)
    nearest = np.empty(frames.shape[:-1], np.int8)
    for start in range(0, len(frames), block):
        x = frames[start:start + block].astype(np.float32)
        # |x - r|^2 = |x|^2 - 2 x.r + |r|^2, as one matmul over all pixels.
        d2 = (x * x).sum(-1, keepdims=True) - 2.0 * (x @ refs.T) + (refs * refs).sum(-1)
        near = d2.argmin(-1).astype(np.int8)
        far = np.take_along_axis(d2, near[..., None].astype(np.intp), -1)[..., 0] > threshold * threshold
        nearest[start:start + block] = near
        strict[start:start + block] = np.where(far, np.int8(UNKNOWN), near)
    return PixelClasses(strict, nearest)


def label_torus(cls: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of equal object class (> 0), 8-connected, wrapping around H and W (not across frames).

    Returns (int32 [T, H, W] component id in [0, C) of each object pixel and -1 elsewhere, C). The components of
    the graph whose nodes are object pixels and whose edges join same-class neighbours on the torus (np.roll
    builds the wrap-around edges), found by scipy's sparse connected_components in one call for all frames.
    """
    t, h, w = cls.shape
    fg = cls > 0
    node = np.full(cls.shape, -1, np.int64)
    n = int(fg.sum())
    node[fg] = np.arange(n)
    if n == 0:
        return np.full(cls.shape, -1, np.int32), 0
    src, dst = [], []
    for dy, dx in _NEIGHBOURS:
        same = fg & (np.roll(cls, (-dy, -dx), axis=(1, 2)) == cls)  # pixel and its (+dy, +dx) neighbour
        src.append(node[same])
        dst.append(np.roll(node, (-dy, -dx), axis=(1, 2))[same])
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = scipy.sparse.coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))
    count, comp = scipy.sparse.csgraph.connected_components(graph, directed=False)
    out = np.full(cls.shape, -1, np.int32)
    out[fg] = comp
    return out, int(count)


class Blobs(NamedTuple):
    """Connected components of all frames (one row each) and their per-(frame, colour) largest.

    comp_map int32 [T, H, W]: row of the component of each pixel, -1 for none.
    frame, colour, area: per component (colour = index into shapes.COLOURS).
    centroid float64 [C, 2]: (y, x) wrap-aware mean pixel position in [0, H) x [0, W).
    largest int32 [T, 7]: row of the largest component of each colour in each frame, -1 if none.
    largest_area int32 [T, 7]: its area (0 if none).
    """

    comp_map: np.ndarray
    frame: np.ndarray
    colour: np.ndarray
    area: np.ndarray
    centroid: np.ndarray
    largest: np.ndarray
    largest_area: np.ndarray


def _wrap(d: np.ndarray, size) -> np.ndarray:
    """Wrap differences on a circle of `size` into [-size/2, size/2)."""
    return (d + size / 2.0) % size - size / 2.0


def find_blobs(cls: np.ndarray) -> Blobs:
    """Label the object pixels of `cls` (`classify_pixels(...).strict`) and measure every component."""
    t, h, w = cls.shape
    comp_map, n = label_torus(cls)
    fg = comp_map >= 0
    comp = comp_map[fg]
    any_pixel = np.zeros(n, np.int64)
    any_pixel[comp] = np.flatnonzero(fg)  # every pixel of a component has its frame and class
    frame = (any_pixel // (h * w)).astype(np.int32)
    colour = (cls.ravel()[any_pixel] - 1).astype(np.int32)
    area = np.bincount(comp, minlength=n).astype(np.int32)
    # Wrap-aware centroid: a circular mean gives a pixel inside the blob's span; offsets from it are unwrapped and
    # averaged, which is exact for any blob narrower than half the frame (every object).
    _, ys, xs = np.nonzero(fg)
    centroid = np.empty((n, 2))
    for axis, coord, size in ((0, ys, h), (1, xs, w)):
        angle = coord * (2 * np.pi / size)
        rough = np.arctan2(np.bincount(comp, np.sin(angle), n), np.bincount(comp, np.cos(angle), n))
        rough = np.round(rough * size / (2 * np.pi)) % size
        offset = _wrap(coord - rough[comp], size)
        centroid[:, axis] = (rough + np.bincount(comp, offset, n) / np.maximum(area, 1)) % size
    # Largest component per (frame, colour): sort by key then area, keep each key's last row.
    key = frame * NUM_COLOURS + colour
    order = np.lexsort((area, key))
    last = np.ones(n, bool)
    last[:-1] = key[order][1:] != key[order][:-1]
    best = order[last]
    largest = np.full((t, NUM_COLOURS), -1, np.int32)
    largest[frame[best], colour[best]] = best
    largest_area = np.where(largest >= 0, area[np.maximum(largest, 0)], 0) if n else np.zeros_like(largest)
    return Blobs(comp_map, frame, colour, area, centroid, largest, largest_area)


def displacement(a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
    """Wrap-aware displacement b - a of (y, x) positions on a size x size torus, in [-size/2, size/2)."""
    return _wrap(np.asarray(b, np.float64) - np.asarray(a, np.float64), size)
