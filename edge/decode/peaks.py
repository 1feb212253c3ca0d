"""Keypoint peaks: 3x3 non-maximum suppression, threshold and sub-pixel refinement, per map.

Terminology (shared by the decode kernels):
    maps:    float32 [C, H, W]   heatmaps at network output resolution (128x128 for BK-Pose)
    peaks:   float32 [P, K, 3]   per keypoint type p, up to K peaks as (x, y, score) in cells
    counts:  int32   [P]         number of valid peaks per type
    dropped: int32   [P]         peaks beyond capacity per type (the weakest are dropped)
Kernels write into caller-allocated arrays and loop a bounded number of times. They expect
finite maps: the decoder counts NaN/Inf cells and zeroes them (on its own copy) first.
"""

import math

import numpy as np
from numba import njit, prange

REFINE_NONE = 0
REFINE_CENTROID = 1  # 5x5 centroid, as the Simple Pose reference but with its x/y swap fixed
REFINE_QUADRATIC = 2  # parabola through log values of the 3 cells on each axis (exact for Gaussians)
REFINE_MODES = {"none": REFINE_NONE, "centroid": REFINE_CENTROID, "quadratic": REFINE_QUADRATIC}


@njit(cache=True, nogil=True)
def count_nonfinite(maps):
    """Number of NaN or Inf cells in `maps` float32 [C, H, W]."""
    n = 0
    for c in range(maps.shape[0]):
        for y in range(maps.shape[1]):
            for x in range(maps.shape[2]):
                if not math.isfinite(maps[c, y, x]):
                    n += 1
    return n


@njit(cache=True, nogil=True)
def zero_nonfinite(maps):
    """Replace NaN and Inf cells of `maps` by 0, in place (so later kernels need no checks)."""
    for c in range(maps.shape[0]):
        for y in range(maps.shape[1]):
            for x in range(maps.shape[2]):
                if not math.isfinite(maps[c, y, x]):
                    maps[c, y, x] = 0.0


@njit(cache=True, nogil=True)
def _is_local_max(m, y, x, v):
    """True when no in-bounds 3x3 neighbour is larger (same as max-pool with reflect padding)."""
    h, w = m.shape
    for yy in range(max(y - 1, 0), min(y + 2, h)):
        for xx in range(max(x - 1, 0), min(x + 2, w)):
            if m[yy, xx] > v:
                return False
    return True


@njit(cache=True, nogil=True)
def _parabola_offset(left, centre, right):
    """Vertex of the parabola through log values at -1, 0, +1, clamped to half a cell."""
    if left <= 0.0 or right <= 0.0 or centre <= 0.0:
        return 0.0
    ll, lc, lr = math.log(left), math.log(centre), math.log(right)
    den = ll - 2.0 * lc + lr
    if den >= 0.0:
        return 0.0
    return min(max(0.5 * (ll - lr) / den, -0.5), 0.5)


@njit(cache=True, nogil=True)
def _refine(m, y, x, mode):
    """Sub-pixel (x, y) of the peak at integer (x, y)."""
    h, w = m.shape
    if mode == REFINE_QUADRATIC and 0 < x < w - 1 and 0 < y < h - 1:
        c = m[y, x]
        dx = _parabola_offset(m[y, x - 1], c, m[y, x + 1])
        dy = _parabola_offset(m[y - 1, x], c, m[y + 1, x])
        return x + dx, y + dy
    if mode == REFINE_CENTROID and y >= 2 and x >= 2 and y + 3 <= h and x + 3 <= w:
        s = 0.0
        sx = 0.0
        sy = 0.0
        for i in range(5):
            for j in range(5):
                b = m[y - 2 + i, x - 2 + j]
                s += b
                sx += b * (j - 2)
                sy += b * (i - 2)
        if s > 0.0:
            return x + sx / s, y + sy / s
    return float(x), float(y)


@njit(cache=True, nogil=True)
def find_peaks_map(m, threshold, refine, out):
    """Peaks of one map `m` float32 [H, W] into `out` float32 [K, 3]; returns (kept, dropped).

    When more than K peaks pass, the K strongest are kept and the rest counted as dropped.
    """
    cap = out.shape[0]
    n = 0
    dropped = 0
    weakest = 0
    h, w = m.shape
    for y in range(h):
        for x in range(w):
            v = m[y, x]
            if not (v >= threshold) or not _is_local_max(m, y, x, v):
                continue
            if n == cap:
                dropped += 1
                if v <= out[weakest, 2]:
                    continue
                slot = weakest
            else:
                slot = n
                n += 1
            px, py = _refine(m, y, x, refine)
            out[slot, 0] = px
            out[slot, 1] = py
            out[slot, 2] = v
            if n == cap:
                weakest = 0
                for i in range(1, cap):
                    if out[i, 2] < out[weakest, 2]:
                        weakest = i
    return n, dropped


@njit(cache=True, nogil=True)
def _peaks_of_type(maps, first_channel, threshold, refine, peaks, counts, dropped, p):
    counts[p], dropped[p] = find_peaks_map(maps[first_channel + p], threshold, refine, peaks[p])


@njit(cache=True, nogil=True)
def find_peaks(maps, first_channel, threshold, refine, peaks, counts, dropped):
    """Peaks of maps[first_channel + p] for every keypoint type p; `dropped` int32 [P] gets the
    per-type count of peaks beyond capacity."""
    for p in range(peaks.shape[0]):
        _peaks_of_type(maps, first_channel, threshold, refine, peaks, counts, dropped, p)


@njit(cache=True, nogil=True, parallel=True)
def find_peaks_parallel(maps, first_channel, threshold, refine, peaks, counts, dropped):
    """`find_peaks` with keypoint types on Numba threads (separate cache entry: own function)."""
    for p in prange(peaks.shape[0]):
        _peaks_of_type(maps, first_channel, threshold, refine, peaks, counts, dropped, p)


def peaks_workspace(num_types, capacity):
    """(peaks, counts, dropped) arrays for `find_peaks`."""
    return (
        np.zeros((num_types, capacity, 3), np.float32),
        np.zeros(num_types, np.int32),
        np.zeros(num_types, np.int32),
    )
