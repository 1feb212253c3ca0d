"""The letterbox: how a source frame is placed in the network input, and how points map back.

Pixel-centre convention (used by every stage: CPU and GPU preprocessing, target rendering,
calibration and the decoder's inverse mapping):

    Pixel (row i, column j) of any image has its centre at continuous coordinates (x=j, y=i)
    and covers [j-0.5, j+0.5] x [i-0.5, i+0.5]. A resize by factor s along an axis maps
    x' = (x + 0.5) * s - 0.5 (the half-pixel mapping of OpenCV's resize and of CUDA textures).

Placement: the frame is scaled by the largest factor that fits (aspect ratio kept; the resized
size is rounded to whole pixels, at least 1, so the per-axis factors `scale_x`/`scale_y` can
differ by a rounding step) and put at the top-left corner (`align="top-left"`, as Simple Pose
pads bottom/right) or centred (`align="center"`); the rest is padding.

Heatmap cells: cell (i, j) at stride s covers input pixels [s*j-0.5, s*j+s-0.5], so its centre
is input pixel s*j + (s-1)/2 (1.5 at stride 4): the same half-pixel mapping with factor 1/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

ALIGNMENTS = ("top-left", "center")


@dataclass(frozen=True)
class Letterbox:
    """Placement of a src_w x src_h frame inside a dst_w x dst_h network input.

    The resized frame occupies columns [pad_left, pad_left + resized_w) and rows
    [pad_top, pad_top + resized_h) of the input; everything else is padding.
    """

    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    resized_w: int
    resized_h: int
    pad_left: int
    pad_top: int

    @property
    def scale_x(self) -> float:
        return self.resized_w / self.src_w

    @property
    def scale_y(self) -> float:
        return self.resized_h / self.src_h

    # ------------------------------------------------------------------ image <-> network input
    def image_to_input(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) x, y points from source-image pixels to network-input pixels."""
        p = np.asarray(points, dtype=np.float64)
        out = np.empty_like(p)
        out[..., 0] = (p[..., 0] + 0.5) * self.scale_x - 0.5 + self.pad_left
        out[..., 1] = (p[..., 1] + 0.5) * self.scale_y - 0.5 + self.pad_top
        return out

    def input_to_image(self, points: np.ndarray) -> np.ndarray:
        """Inverse of `image_to_input`. Points on the padding land outside the source image."""
        p = np.asarray(points, dtype=np.float64)
        out = np.empty_like(p)
        out[..., 0] = (p[..., 0] - self.pad_left + 0.5) / self.scale_x - 0.5
        out[..., 1] = (p[..., 1] - self.pad_top + 0.5) / self.scale_y - 0.5
        return out

    # ------------------------------------------------------------------ network input <-> heatmap
    @staticmethod
    def input_to_heatmap(points: np.ndarray, stride: int = 4) -> np.ndarray:
        """Map network-input pixels to heatmap cells at `stride`."""
        return (np.asarray(points, dtype=np.float64) + 0.5) / stride - 0.5

    @staticmethod
    def heatmap_to_input(points: np.ndarray, stride: int = 4) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) + 0.5) * stride - 0.5

    def image_to_heatmap(self, points: np.ndarray, stride: int = 4) -> np.ndarray:
        return self.input_to_heatmap(self.image_to_input(points), stride)

    def heatmap_to_image(self, points: np.ndarray, stride: int = 4) -> np.ndarray:
        return self.input_to_image(self.heatmap_to_input(points, stride))

    def heatmap_to_image_affine(self, stride: int = 4) -> Tuple[float, float, float, float]:
        """(ax, bx, ay, by) with x_image = ax * x_cell + bx and y_image = ay * y_cell + by.

        The decoder's jitted code applies this per keypoint instead of calling numpy per point.
        """
        ax = stride / self.scale_x
        ay = stride / self.scale_y
        bx = (0.5 * stride - self.pad_left) / self.scale_x - 0.5
        by = (0.5 * stride - self.pad_top) / self.scale_y - 0.5
        return ax, bx, ay, by

    def image_to_input_matrix(self) -> np.ndarray:
        """2x3 affine matrix (float64) of `image_to_input`, usable with cv2.warpAffine."""
        sx, sy = self.scale_x, self.scale_y
        return np.array(
            [[sx, 0.0, 0.5 * sx - 0.5 + self.pad_left], [0.0, sy, 0.5 * sy - 0.5 + self.pad_top]],
            dtype=np.float64,
        )

    def inside_image(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of source-image points that lie on the image (not beyond its border)."""
        p = np.asarray(points, dtype=np.float64)
        x, y = p[..., 0], p[..., 1]
        return (x >= -0.5) & (x <= self.src_w - 0.5) & (y >= -0.5) & (y <= self.src_h - 0.5)


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def letterbox(
    src_w: int, src_h: int, dst_w: int = 512, dst_h: int = 512, align: str = "top-left"
) -> Letterbox:
    """Compute the placement of a src_w x src_h frame in a dst_w x dst_h input."""
    for label, v in (("src_w", src_w), ("src_h", src_h), ("dst_w", dst_w), ("dst_h", dst_h)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{label} must be a positive integer, found {v!r}")
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, found {align!r}")
    scale = min(dst_w / src_w, dst_h / src_h)
    resized_w = min(max(_round_half_up(src_w * scale), 1), dst_w)
    resized_h = min(max(_round_half_up(src_h * scale), 1), dst_h)
    if align == "center":
        pad_left, pad_top = (dst_w - resized_w) // 2, (dst_h - resized_h) // 2
    else:
        pad_left, pad_top = 0, 0
    return Letterbox(int(src_w), int(src_h), int(dst_w), int(dst_h), resized_w, resized_h, pad_left, pad_top)
