"""Circle / square / triangle from a blob's mask, by the best template overlap (IoU).

Why templates rather than hand-made features (bounding-box fill ratio ~1.0 / 0.78 / 0.5, symmetry): the world's own
drawing rule (`shapes.shape_mask`) is the ground truth at every frame size, including small ones where the
features break down (at 16x16 a "circle" is a 5-pixel plus and a triangle is also 5 pixels in a 3x3 box; only the
layout tells them apart). The bank holds each shape at the configured half-size and one pixel smaller and larger
(generated objects grow or shrink with blur), each at every integer shift within a small range around the blob's
rounded centroid (a triangle's centroid lies below its centre pixel). The IoU's union counts the blob's whole area,
so smears larger than the crop are penalised too. A blob whose best IoU is below `min_iou` has no shape.

Blobs that wrap around the borders are handled by cropping with modular indices around the wrap-aware centroid.
Before matching, a blob takes back its blurred rim (`blob_masks`).
"""
from __future__ import annotations

import functools

import numpy as np

from streamdit_jax import shapes_world as shapes

NO_SHAPE = -1


@functools.lru_cache(maxsize=16)
def template_bank(half: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(templates float32 [M, P], shape index [M], crop radius R) for objects of bounding half-width `half`;
    P = (2R + 1)^2 pixels of a crop centred on the blob's rounded centroid."""
    scales = [h for h in (half - 1, half, half + 1) if h >= 1]
    reach = int(np.ceil(0.4 * max(scales))) + 1  # triangle centroid sits ~0.37 h below its centre pixel
    radius = max(scales) + reach + 1
    grid = np.arange(-radius, radius + 1)
    oy, ox = np.meshgrid(grid, grid, indexing="ij")
    templates, labels = [], []
    for s in range(len(shapes.SHAPES)):
        for h in scales:
            for sy in range(-reach, reach + 1):
                for sx in range(-reach, reach + 1):
                    templates.append(shapes.shape_mask(s, ox - sx, oy - sy, h).ravel())
                    labels.append(s)
    return np.asarray(templates, np.float32), np.asarray(labels, np.int32), radius


def _crop(image: np.ndarray, frames: np.ndarray, centroids: np.ndarray, radius: int) -> np.ndarray:
    """[N, 2R+1, 2R+1] windows of image [T, H, W] (wrapping around) centred on the rounded (y, x) centroids."""
    _, h, w = image.shape
    offsets = np.arange(-radius, radius + 1)
    rows = (np.round(centroids[:, 0]).astype(np.int64)[:, None] + offsets) % h
    cols = (np.round(centroids[:, 1]).astype(np.int64)[:, None] + offsets) % w
    return image[frames[:, None, None], rows[:, :, None], cols[:, None, :]]


def blob_masks(comp_map: np.ndarray, nearest: np.ndarray, frames: np.ndarray, comps: np.ndarray,
               colours: np.ndarray, centroids: np.ndarray, radius: int) -> np.ndarray:
    """bool [N, 2R+1, 2R+1]: component comps[n] around its centroid, plus its rim of UNKNOWN-or-not pixels whose
    nearest reference is still the blob's colour (`nearest` = `PixelClasses.nearest`) and that touch the component.

    Blur and colour noise push a shape's thin parts (a triangle's 1-pixel apex, its base corners) just past the
    strict colour threshold; one ring of such pixels is taken back, never pixels nearer the background or another
    colour, so the grown mask stays the object's."""
    core = _crop(comp_map, frames, centroids, radius) == comps[:, None, None]
    same = _crop(nearest, frames, centroids, radius) == (colours + 1)[:, None, None]
    padded = np.pad(core, ((0, 0), (1, 1), (1, 1)))
    size = core.shape[1]
    touch = np.zeros_like(core)
    for dy in range(3):
        for dx in range(3):
            touch |= padded[:, dy:dy + size, dx:dx + size]
    return core | (same & touch)


def classify_shapes(comp_map: np.ndarray, nearest: np.ndarray, frames: np.ndarray, comps: np.ndarray,
                    colours: np.ndarray, centroids: np.ndarray, areas: np.ndarray, half: int,
                    min_iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(shape index or NO_SHAPE [N], best IoU [N]) of components comps[n] (colour index colours[n], wrap-aware
    centroid (y, x), area in pixels) in frames[n]; see `blob_masks` for the mask that is matched."""
    n = len(comps)
    if n == 0:
        return np.zeros(0, np.int32), np.zeros(0)
    templates, labels, full = template_bank(half)
    _, h, w = comp_map.shape
    radius = min(full, (min(h, w) - 1) // 2)
    if radius < full:  # tiny frames: cut the bank down to the crop
        keep = np.zeros((2 * full + 1, 2 * full + 1), bool)
        keep[full - radius:full + radius + 1, full - radius:full + radius + 1] = True
        templates = templates[:, keep.ravel()]
    masks = blob_masks(comp_map, nearest, frames, comps, colours, centroids, radius)
    grown = np.asarray(areas, np.float32) + masks.sum((1, 2)) - (_crop(comp_map, frames, centroids, radius)
                                                                 == comps[:, None, None]).sum((1, 2))
    masks = masks.reshape(n, -1).astype(np.float32)
    inter = masks @ templates.T  # [N, M]
    union = grown[:, None] + templates.sum(1)[None] - inter  # the blob's pixels outside the crop count too
    iou = inter / np.maximum(union, 1.0)
    per_shape = np.stack([iou[:, labels == s].max(1) for s in range(len(shapes.SHAPES))], 1)
    best = per_shape.argmax(1).astype(np.int32)
    best_iou = per_shape.max(1)
    return np.where(best_iou >= min_iou, best, NO_SHAPE).astype(np.int32), best_iou
