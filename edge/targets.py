"""Ground-truth heatmaps from keypoint annotations (model_spec section 5): training targets and
the oracle maps the decoder benchmarks feed to both decoders.

One implementation for every user (training, accuracy and crowd benchmarks, tests), in numpy and
OpenCV. Coordinates follow `edge.geometry`: heatmap cell (i, j) at stride s has its centre at
network-input pixel (s*j + (s-1)/2, s*i + (s-1)/2), i.e. (4j+1.5, 4i+1.5) at stride 4.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Optional, Sequence

import numpy as np

from edge.geometry import Letterbox
from edge.layout import BKPOSE_LAYOUT, COCO_KEYPOINTS, Layout

SIGMA_KEYPOINT = 9.0  # input pixels
SIGMA_LIMB = 7.0  # input pixels
KEYPOINT_WINDOW = 7  # cells either side of the keypoint's cell (exp(-(28/9)^2/2) ~ 0.008 there)
LIMB_BOX_MARGIN = 4.0  # input pixels added around a limb's end points
LIMB_FLOOR = 0.015  # limb values at or below this become LIMB_FILL
LIMB_FILL = 0.01

_LEFT_SHOULDER = COCO_KEYPOINTS.index("left_shoulder")
_RIGHT_SHOULDER = COCO_KEYPOINTS.index("right_shoulder")


def coco_to_layout_keypoints(coco: np.ndarray, layout: Layout = BKPOSE_LAYOUT) -> np.ndarray:
    """COCO-17 keypoints [P, 17, 3] (x, y, v) to the layout's order [P, K, 3].

    The neck (absent from COCO) is the shoulders' midpoint, labelled only when both shoulders are,
    with the lower of their two visibility flags.
    """
    coco = np.asarray(coco, np.float64).reshape(-1, len(COCO_KEYPOINTS), 3)
    out = np.zeros((coco.shape[0], layout.num_keypoints, 3), np.float64)
    for k, c in enumerate(layout.to_coco):
        if c >= 0:
            out[:, k] = coco[:, c]
        elif layout.keypoints[k] == "neck":
            ls, rs = coco[:, _LEFT_SHOULDER], coco[:, _RIGHT_SHOULDER]
            both = (ls[:, 2] > 0) & (rs[:, 2] > 0)
            out[both, k, :2] = (ls[both, :2] + rs[both, :2]) / 2
            out[both, k, 2] = np.minimum(ls[both, 2], rs[both, 2])
    return out


def _cell_centres(n: int, stride: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) * stride + (stride - 1) / 2.0


def _cell_range(lo: float, hi: float, n: int, stride: int) -> range:
    """Cells whose centres lie around input-pixel interval [lo, hi] (rounded to the nearest cell)."""
    first = int(math.floor((lo - (stride - 1) / 2.0) / stride + 0.5))
    last = int(math.floor((hi - (stride - 1) / 2.0) / stride + 0.5))
    return range(max(first, 0), min(last, n - 1) + 1)


def render_keypoint_map(out: np.ndarray, points: np.ndarray, stride: int, sigma: float) -> None:
    """Max of Gaussian bumps at `points` [M, 2] (input pixels) into `out` [H, W], in place."""
    h, w = out.shape
    xs, ys = _cell_centres(w, stride), _cell_centres(h, stride)
    for x, y in points:
        cols = _cell_range(x - KEYPOINT_WINDOW * stride, x + KEYPOINT_WINDOW * stride, w, stride)
        rows = _cell_range(y - KEYPOINT_WINDOW * stride, y + KEYPOINT_WINDOW * stride, h, stride)
        if len(cols) == 0 or len(rows) == 0:
            continue
        gx = np.exp(-((xs[cols.start : cols.stop] - x) ** 2) / (2 * sigma**2))
        gy = np.exp(-((ys[rows.start : rows.stop] - y) ** 2) / (2 * sigma**2))
        patch = out[rows.start : rows.stop, cols.start : cols.stop]
        np.maximum(patch, np.outer(gy, gx), out=patch)


def render_limb_map(out: np.ndarray, segments: np.ndarray, stride: int, sigma: float) -> None:
    """Limb map for `segments` [M, 2, 2] (A, B in input pixels) into `out` [H, W].

    Within each segment's box (expanded by LIMB_BOX_MARGIN) the value is a Gaussian of the
    distance to the infinite line AB, raised to LIMB_FILL where it is <= LIMB_FLOOR; where boxes
    of several segments overlap, the mean over them. Outside every box: 0.
    """
    h, w = out.shape
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.int32)
    xs, ys = _cell_centres(w, stride), _cell_centres(h, stride)
    for (ax, ay), (bx, by) in segments:
        cols = _cell_range(min(ax, bx) - LIMB_BOX_MARGIN, max(ax, bx) + LIMB_BOX_MARGIN, w, stride)
        rows = _cell_range(min(ay, by) - LIMB_BOX_MARGIN, max(ay, by) + LIMB_BOX_MARGIN, h, stride)
        if len(cols) == 0 or len(rows) == 0:
            continue
        px = xs[cols.start : cols.stop][None, :] - ax
        py = ys[rows.start : rows.stop][:, None] - ay
        dx, dy = bx - ax, by - ay
        norm = math.hypot(dx, dy)
        dist2 = (px * dy - py * dx) ** 2 / norm**2 if norm > 0 else px**2 + py**2
        value = np.exp(-dist2 / (2 * sigma**2))
        value[value <= LIMB_FLOOR] = LIMB_FILL
        total[rows.start : rows.stop, cols.start : cols.stop] += value
        count[rows.start : rows.stop, cols.start : cols.stop] += 1
    np.divide(total, count, out=total, where=count > 0)
    out[...] = total


def render_heatmaps(
    people: np.ndarray,
    layout: Layout = BKPOSE_LAYOUT,
    size: Sequence[int] = (128, 128),
    person_mask: Optional[np.ndarray] = None,
    sigma_keypoint: float = SIGMA_KEYPOINT,
    sigma_limb: float = SIGMA_LIMB,
) -> np.ndarray:
    """Target heatmaps float32 [C, H, W] for `people` [P, K, 3] (x, y, v in network-input pixels,
    layout keypoint order; v > 0 = labelled).

    Channels: limb maps, keypoint maps, then the auxiliary person mask (`person_mask` [H, W] in
    [0, 1], zeros when None) and the max over the keypoint maps. Everything is clipped to [0, 1].
    """
    h, w = int(size[0]), int(size[1])
    people = np.asarray(people, np.float64).reshape(-1, layout.num_keypoints, 3)
    maps = np.zeros((layout.num_channels, h, w), np.float32)
    labelled = people[:, :, 2] > 0
    for k in range(layout.num_keypoints):
        render_keypoint_map(
            maps[layout.keypoint_start + k], people[labelled[:, k], k, :2], layout.stride, sigma_keypoint
        )
    for k, (a, b) in enumerate(layout.limbs):
        both = labelled[:, a] & labelled[:, b]
        segments = np.stack([people[both, a, :2], people[both, b, :2]], axis=1)
        render_limb_map(maps[layout.limb_start + k], segments, layout.stride, sigma_limb)
    aux = layout.num_decoded_channels
    if person_mask is not None and len(layout.aux_channels) >= 1:
        maps[aux] = person_mask
    if len(layout.aux_channels) >= 2:
        maps[aux + 1] = maps[layout.keypoint_channels.start : layout.keypoint_channels.stop].max(axis=0)
    np.clip(maps, 0.0, 1.0, out=maps)
    return maps


def annotation_people(annotations: Iterable[Dict[str, Any]], lb: Letterbox, layout: Layout = BKPOSE_LAYOUT):
    """COCO annotations of one image -> people [P, K, 3] in network-input pixels (layout order).

    Crowd regions and people without labelled keypoints are left out.
    """
    coco = [
        a["keypoints"] for a in annotations if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0
    ]  # fmt: skip
    if not coco:
        return np.zeros((0, layout.num_keypoints, 3), np.float64)
    people = coco_to_layout_keypoints(np.asarray(coco, np.float64), layout)
    people[:, :, :2] = lb.image_to_input(people[:, :, :2])
    return people


def render_annotations(
    annotations: Iterable[Dict[str, Any]], lb: Letterbox, layout: Layout = BKPOSE_LAYOUT
) -> np.ndarray:
    """Oracle heatmaps [C, dst_h/stride, dst_w/stride] for one image's COCO annotations."""
    size = (lb.dst_h // layout.stride, lb.dst_w // layout.stride)
    return render_heatmaps(annotation_people(annotations, lb, layout), layout, size)
