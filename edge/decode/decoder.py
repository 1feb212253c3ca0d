"""The runtime decoder: heatmaps [50, H, W] -> `Poses`, at heatmap resolution, Numba-jitted.

The grouping reproduces Simple Pose's `evaluate.py` (model_spec section 7) with its constants as
defaults, but works on the 128x128 maps with sub-pixel peaks instead of bicubic-upsampling 48
maps to the image size. All work arrays are allocated once, in the constructor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from edge import stages
from edge.decode import limbs as limbs_k
from edge.decode import peaks as peaks_k
from edge.decode import people as people_k
from edge.decode.poses import DecodeCounters, Poses
from edge.geometry import Letterbox, letterbox
from edge.layout import BKPOSE_LAYOUT, Layout


@dataclass(frozen=True)
class DecoderParams:
    """Decoder constants; the defaults are the Simple Pose reference's (model_spec section 7)."""

    peak_threshold: float = 0.1  # thre1: keypoint peaks must be >= this
    limb_threshold: float = 0.1  # thre2: a limb sample counts when > this
    limb_samples: int = 20  # mid_num: at most this many samples per segment
    limb_min_fraction: float = 0.8  # connect_ration: fraction of samples above limb_threshold
    length_rate: float = 16.0  # len_rate: new limb <= 16x the person's longest limb
    merge_tolerance: float = 0.7  # connection_tole
    min_parts: int = 2  # people with fewer keypoints are dropped
    min_mean_score: float = 0.45  # people with total / count below this are dropped
    refine: str = "quadratic"  # sub-pixel refinement: quadratic, centroid or none
    max_peaks: int = 100  # capacity per keypoint type; the strongest are kept
    max_people: int = 100  # capacity of people per frame
    parallel: bool = False  # Numba threads over keypoint types and limbs (helps on crowded frames)

    def __post_init__(self) -> None:
        if self.refine not in peaks_k.REFINE_MODES:
            raise ValueError(f"refine must be one of {sorted(peaks_k.REFINE_MODES)}, found {self.refine!r}")
        if not self.peak_threshold > 0:
            raise ValueError(f"peak_threshold must be > 0, found {self.peak_threshold}")
        for name in ("limb_samples", "max_peaks", "max_people", "min_parts"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, found {getattr(self, name)}")


class Decoder:
    """Decode BK-Pose heatmaps into people.

    `decode(heatmaps, letterbox)` takes float32 or float16 [50, H, W] (or [1, 50, H, W]) maps,
    contiguous or not, and the `Letterbox` the frame was preprocessed with; it returns `Poses` in
    source-image pixels. Not thread-safe: use one Decoder per thread (work arrays are shared).
    """

    def __init__(self, layout: Layout = BKPOSE_LAYOUT, **params) -> None:
        self.layout = layout
        self.params = DecoderParams(**params)
        self.last_timings: Dict[str, float] = {}  # ms of the last decode: peaks, grouping
        p = self.params
        self._limbs = np.asarray(layout.limbs, np.int32)
        self._to_coco = np.asarray(layout.to_coco, np.int32)
        self._refine = peaks_k.REFINE_MODES[p.refine]
        self._peaks, self._counts, self._dropped = peaks_k.peaks_workspace(layout.num_keypoints, p.max_peaks)
        self._cand, self._conn, self._conn_n = limbs_k.limbs_workspace(
            layout.num_limbs, p.max_peaks, p.parallel
        )
        self._find_peaks = peaks_k.find_peaks_parallel if p.parallel else peaks_k.find_peaks
        self._connect_limbs = limbs_k.connect_limbs_parallel if p.parallel else limbs_k.connect_limbs
        (self._pid, self._psc, self._pf, self._pcnt, self._kps, self._scores) = people_k.people_workspace(
            p.max_people, layout.num_keypoints
        )
        self._work: Optional[np.ndarray] = None  # float32 copy for float16 / non-contiguous input

    # ------------------------------------------------------------------ checks
    def _as_float32_maps(self, heatmaps: np.ndarray) -> np.ndarray:
        if not isinstance(heatmaps, np.ndarray):
            raise ValueError(f"heatmaps must be a numpy array, found {type(heatmaps).__name__}")
        if heatmaps.ndim == 4 and heatmaps.shape[0] == 1:
            heatmaps = heatmaps[0]
        c = self.layout.num_channels
        if heatmaps.ndim != 3 or heatmaps.shape[0] != c:
            raise ValueError(
                f"heatmaps must be [{c}, H, W] (or [1, {c}, H, W]) for layout {self.layout.name!r} "
                f"({self.layout.num_limbs} limb maps, {self.layout.num_keypoints} keypoint maps, "
                f"{len(self.layout.aux_channels)} auxiliary), found shape {heatmaps.shape}"
            )
        if heatmaps.dtype == np.float32 and heatmaps.flags.c_contiguous:
            return heatmaps
        if heatmaps.dtype not in (np.float32, np.float16):
            raise ValueError(f"heatmaps must be float32 or float16, found {heatmaps.dtype}")
        return self._copy_to_work(heatmaps)

    def _copy_to_work(self, heatmaps: np.ndarray) -> np.ndarray:
        if self._work is None or self._work.shape != heatmaps.shape:
            self._work = np.empty(heatmaps.shape, np.float32)
        np.copyto(self._work, heatmaps)
        return self._work

    def _check_geometry(self, maps: np.ndarray, lb: Letterbox) -> None:
        s = self.layout.stride
        if not isinstance(lb, Letterbox):
            raise ValueError(f"letterbox must be an edge.geometry.Letterbox, found {type(lb).__name__}")
        if maps.shape[1] * s != lb.dst_h or maps.shape[2] * s != lb.dst_w:
            raise ValueError(
                f"heatmaps {maps.shape[1]}x{maps.shape[2]} at stride {s} do not match the letterbox's "
                f"network input {lb.dst_w}x{lb.dst_h}"
            )

    # ------------------------------------------------------------------ decoding
    def decode(self, heatmaps: np.ndarray, lb: Letterbox) -> Poses:
        """People in one frame's heatmaps; `last_timings` then holds the peak and grouping ms."""
        start = time.perf_counter()
        maps = self._as_float32_maps(heatmaps)
        self._check_geometry(maps, lb)
        p, lay = self.params, self.layout
        decoded = lay.num_decoded_channels
        counters = DecodeCounters(nonfinite_cells=int(peaks_k.count_nonfinite(maps[:decoded])))
        if counters.nonfinite_cells:
            if maps is not self._work:
                maps = self._copy_to_work(maps)  # never modify the caller's array
            peaks_k.zero_nonfinite(maps[:decoded])
        self._find_peaks(
            maps, lay.keypoint_start, p.peak_threshold, self._refine, self._peaks, self._counts, self._dropped
        )
        counters.peaks_dropped = int(self._dropped.sum())
        peaks_done = time.perf_counter()
        ax, bx, ay, by = lb.heatmap_to_image_affine(lay.stride)
        self._connect_limbs(
            maps, lay.limb_start, self._limbs, self._peaks, self._counts, ax, ay, float(lb.src_h),
            p.limb_threshold, p.limb_samples, p.limb_min_fraction, self._cand, self._conn, self._conn_n,
        )  # fmt: skip
        n, dropped = people_k.assemble_people(
            self._limbs, self._peaks, self._conn, self._conn_n, p.length_rate, p.merge_tolerance,
            self._pid, self._psc, self._pf, self._pcnt,
        )  # fmt: skip
        counters.people_dropped = int(dropped)
        kept = people_k.emit_people(
            self._peaks, self._pid, self._pf, self._pcnt, n, self._to_coco, p.min_parts, p.min_mean_score,
            ax, bx, ay, by, self._kps, self._scores,
        )  # fmt: skip
        poses = Poses(self._kps[:kept].copy(), self._scores[:kept].copy(), counters)
        done = time.perf_counter()
        self.last_timings = {
            stages.PEAKS: (peaks_done - start) * 1e3,
            stages.GROUPING: (done - peaks_done) * 1e3,
        }
        return poses

    def warmup(self, height: int = 128, width: int = 128) -> float:
        """Compile (or load from the on-disk cache) every jitted function on maps of the model's
        size (at least 16 x 16), with two people's worth of limbs; returns the seconds taken."""
        if height < 16 or width < 16:
            raise ValueError(f"warm-up maps must be at least 16 x 16, found {height} x {width}")
        start = time.perf_counter()
        lay = self.layout
        maps = np.zeros((lay.num_channels, height, width), np.float32)
        cy, cx = height // 2, width // 2
        for limb_k, (a, b) in enumerate(lay.limbs[:2]):
            maps[lay.keypoint_start + a, cy, cx - 5] = 1.0
            maps[lay.keypoint_start + b, cy, cx + 5] = 1.0
            maps[lay.limb_start + limb_k, cy - 2 : cy + 3, cx - 7 : cx + 8] = 1.0
        self.decode(
            maps, letterbox(width * lay.stride, height * lay.stride, width * lay.stride, height * lay.stride)
        )
        return time.perf_counter() - start
