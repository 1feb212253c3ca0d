"""Limb scoring and per-limb greedy matching (Simple Pose `find_connections`, at heatmap scale).

Arrays (see peaks.py for `maps`, `peaks`, `counts`):
    limbs:     int32   [L, 2]      (from, to) keypoint types, in grouping order
    conn:      float32 [L, K, 4]   selected connections per limb: (index in A, index in B,
                                   limb score s, length in image pixels)
    conn_n:    int32   [L]         number of selected connections per limb
    cand:      float32 [S, K*K, 5] scratch: (i, j, s, length, ranking key); S = 1, or L when
                                   limbs run in parallel
Maps must be finite here (the decoder zeroes NaN/Inf cells first).
Segment lengths, the sample count and the length prior are measured in source-image pixels
(cells times the letterbox's per-axis factors `ax`, `ay`) so the acceptance rule means what it
means in the reference, which works on maps resized to the image.
"""

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def sample_bilinear(m, x, y):
    """Bilinear value of map `m` [H, W] (finite values) at cell coordinates (x, y), clamped."""
    h, w = m.shape
    x = min(max(x, 0.0), w - 1.0)
    y = min(max(y, 0.0), h - 1.0)
    x0 = int(x)
    y0 = int(y)
    x1 = min(x0 + 1, w - 1)
    y1 = min(y0 + 1, h - 1)
    fx = x - x0
    fy = y - y0
    top = m[y0, x0] + (m[y0, x1] - m[y0, x0]) * fx
    bottom = m[y1, x0] + (m[y1, x1] - m[y1, x0]) * fx
    return top + (bottom - top) * fy


@njit(cache=True, nogil=True)
def score_limb(m, xa, ya, xb, yb, length, image_height, threshold, max_samples, min_fraction):
    """Limb score s of segment A->B on limb map `m`, or -1.0 when the reference rule rejects it.

    Rule: m = min(round(length + 1), max_samples) samples with both endpoints; at least
    min_fraction of them above `threshold`; s = mean + min(0.5 * image_height / length - 1, 0) > 0.
    """
    n_samples = min(int(np.rint(length + 1.0)), max_samples)
    needed = min_fraction * n_samples
    total = 0.0
    above = 0
    for t in range(n_samples):
        f = t / (n_samples - 1) if n_samples > 1 else 0.0
        v = sample_bilinear(m, xa + (xb - xa) * f, ya + (yb - ya) * f)
        total += v
        if v > threshold:
            above += 1
        elif above + (n_samples - 1 - t) < needed:
            return -1.0  # cannot reach the fraction any more: same answer, less work on noise
    s = total / n_samples + min(0.5 * image_height / length - 1.0, 0.0)
    if above >= needed and s > 0.0:
        return s
    return -1.0


@njit(cache=True, nogil=True)
def connect_limb(m, pa, na, pb, nb, ax, ay, image_height, threshold, max_samples, min_fraction, cand, out):
    """Score every A x B pair of one limb and keep a greedy one-to-one matching; returns its size.

    Candidates are ranked by 0.5*s + 0.25*score_a + 0.25*score_b (stable, descending) and taken
    while neither end is used, up to min(na, nb), exactly as the reference does.
    """
    nc = 0
    for i in range(na):
        for j in range(nb):
            length = math.hypot((pb[j, 0] - pa[i, 0]) * ax, (pb[j, 1] - pa[i, 1]) * ay)
            if length == 0.0:
                continue
            s = score_limb(
                m, pa[i, 0], pa[i, 1], pb[j, 0], pb[j, 1], length,
                image_height, threshold, max_samples, min_fraction,
            )  # fmt: skip
            if s > 0.0:
                cand[nc, 0] = i
                cand[nc, 1] = j
                cand[nc, 2] = s
                cand[nc, 3] = length
                cand[nc, 4] = 0.5 * s + 0.25 * pa[i, 2] + 0.25 * pb[j, 2]
                nc += 1
    if nc == 0:
        return 0
    order = np.argsort(-cand[:nc, 4], kind="mergesort")
    used_a = np.zeros(na, np.bool_)
    used_b = np.zeros(nb, np.bool_)
    n = 0
    limit = min(na, nb)
    for r in range(nc):
        c = order[r]
        i = int(cand[c, 0])
        j = int(cand[c, 1])
        if used_a[i] or used_b[j]:
            continue
        used_a[i] = True
        used_b[j] = True
        out[n, 0] = i
        out[n, 1] = j
        out[n, 2] = cand[c, 2]
        out[n, 3] = cand[c, 3]
        n += 1
        if n >= limit:
            break
    return n


@njit(cache=True, nogil=True)
def _connect_one(maps, first_channel, limbs, peaks, counts, ax, ay, image_height,
                 threshold, max_samples, min_fraction, cand, conn, conn_n, k):  # fmt: skip
    a = limbs[k, 0]
    b = limbs[k, 1]
    conn_n[k] = connect_limb(
        maps[first_channel + k], peaks[a], counts[a], peaks[b], counts[b], ax, ay,
        image_height, threshold, max_samples, min_fraction, cand[k % cand.shape[0]], conn[k],
    )  # fmt: skip


@njit(cache=True, nogil=True)
def connect_limbs(maps, first_channel, limbs, peaks, counts, ax, ay, image_height,
                  threshold, max_samples, min_fraction, cand, conn, conn_n):  # fmt: skip
    """`connect_limb` for every limb k on maps[first_channel + k]; `cand` is [1, K*K, 5]."""
    for k in range(limbs.shape[0]):
        _connect_one(maps, first_channel, limbs, peaks, counts, ax, ay, image_height,
                     threshold, max_samples, min_fraction, cand, conn, conn_n, k)  # fmt: skip


@njit(cache=True, nogil=True, parallel=True)
def connect_limbs_parallel(maps, first_channel, limbs, peaks, counts, ax, ay, image_height,
                           threshold, max_samples, min_fraction, cand, conn, conn_n):  # fmt: skip
    """`connect_limbs` with limbs on Numba threads; `cand` is [L, K*K, 5], one scratch per limb."""
    for k in prange(limbs.shape[0]):
        _connect_one(maps, first_channel, limbs, peaks, counts, ax, ay, image_height,
                     threshold, max_samples, min_fraction, cand, conn, conn_n, k)  # fmt: skip


def limbs_workspace(num_limbs, capacity, parallel=False):
    """(cand, conn, conn_n) arrays for `connect_limbs` (or `connect_limbs_parallel`)."""
    return (
        np.zeros((num_limbs if parallel else 1, capacity * capacity, 5), np.float32),
        np.zeros((num_limbs, capacity, 4), np.float32),
        np.zeros(num_limbs, np.int32),
    )
