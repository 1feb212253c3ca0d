"""People keep one ID across the frames of a stream: bottom-up pose tracking on keypoints.

Each frame's people are matched to the stream's tracks by pose similarity: OKS (the layout's
sigmas) against each track's constant-velocity prediction, averaged over the keypoints found in
both and scaled by the largest size the person has shown (so a half-hidden person still matches),
or the IoU of their keypoint boxes, whichever is higher. The assignment is optimal
(`scipy.optimize.linear_sum_assignment`; scipy has Python 3.8 aarch64 wheels). A track is
tentative until matched `min_hits` times, then confirmed and given the next ID, never reused in
the stream. A confirmed track that goes unmatched is lost, predicted forward, and kept for
`max_age_s` seconds of timestamps (dropped frames do not shorten it); a person reappearing near the
prediction gets their ID back. Confirmed people's keypoints are smoothed by a One-Euro filter per
track; the decoder's stay in `Poses.raw_keypoints`.

The tracks live in preallocated arrays and the per-frame work is two Numba kernels (similarity,
update), so a frame costs microseconds per person rather than Python objects per person.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from numba import njit

from edge.decode.poses import Poses
from edge.layout import COCO_OKS_SIGMAS
from edge.results import Result, ResultStage
from edge.smoothing import OneEuroParams, one_euro_step
from edge.stages import TRACK


@dataclass(frozen=True)
class TrackerParams:
    min_similarity: float = 0.2  # OKS (or IoU) below which a person is not the track
    min_common_keypoints: int = 3  # fewer found in both the track and the person: box IoU only
    min_hits: int = 3  # matches before a track is confirmed and gets an ID
    max_age_s: float = 2.0  # how long a lost confirmed track waits to be found again
    velocity_smoothing: float = 0.2  # weight of the newest velocity in its running average
    smooth: bool = True  # One-Euro filter on confirmed people's keypoints
    one_euro: OneEuroParams = field(default_factory=OneEuroParams)

    def __post_init__(self) -> None:
        if not 0 <= self.min_similarity < 1 or self.min_hits < 1 or self.max_age_s < 0:
            raise ValueError(f"tracker needs 0 <= min_similarity < 1, min_hits >= 1, max_age_s >= 0: {self}")
        if not 0 < self.velocity_smoothing <= 1:
            raise ValueError(f"velocity_smoothing must be in (0, 1], found {self.velocity_smoothing}")


@njit(cache=True, nogil=True)
def _box(xy: np.ndarray, found: np.ndarray) -> tuple:
    x0, y0, x1, y1 = math.inf, math.inf, -math.inf, -math.inf
    for k in range(found.shape[0]):
        if found[k]:
            x0, y0 = min(x0, xy[k, 0]), min(y0, xy[k, 1])
            x1, y1 = max(x1, xy[k, 0]), max(y1, xy[k, 1])
    if x0 > x1:
        return 0.0, 0.0, 0.0, 0.0
    return x0, y0, x1, y1


@njit(cache=True, nogil=True)
def _similarity(
    position: np.ndarray, velocity: np.ndarray, known: np.ndarray, last_time: np.ndarray,
    area: np.ndarray, n: int, now: float, people: np.ndarray, k2: np.ndarray, min_common: int,
) -> np.ndarray:  # fmt: skip
    """[n tracks, people]: max(OKS over common keypoints of the prediction, box IoU)."""
    m, kk = people.shape[0], people.shape[1]
    sim = np.zeros((n, m))
    predicted = np.empty((kk, 2))
    for t in range(n):
        dt = max(now - last_time[t], 0.0)
        for k in range(kk):
            predicted[k, 0] = position[t, k, 0] + velocity[t, 0] * dt
            predicted[k, 1] = position[t, k, 1] + velocity[t, 1] * dt
        tx0, ty0, tx1, ty1 = _box(predicted, known[t])
        for j in range(m):
            found = people[j, :, 2] > 0
            px0, py0, px1, py1 = _box(people[j, :, :2], found)
            scale = max(area[t], (px1 - px0) * (py1 - py0), 1.0)
            total, common = 0.0, 0
            for k in range(kk):
                if known[t, k] and found[k]:
                    dx, dy = people[j, k, 0] - predicted[k, 0], people[j, k, 1] - predicted[k, 1]
                    total += math.exp(-(dx * dx + dy * dy) / (2.0 * scale * k2[k]))
                    common += 1
            oks = total / common if common >= min_common else 0.0
            iw = min(tx1, px1) - max(tx0, px0)
            ih = min(ty1, py1) - max(ty0, py0)
            iou = 0.0
            if iw > 0 and ih > 0:
                union = (tx1 - tx0) * (ty1 - ty0) + (px1 - px0) * (py1 - py0) - iw * ih
                iou = iw * ih / union if union > 0 else 0.0
            sim[t, j] = max(oks, iou)
    return sim


@njit(cache=True, nogil=True)
def _update(
    rows: np.ndarray, people: np.ndarray, now: float, position: np.ndarray, velocity: np.ndarray,
    known: np.ndarray, last_time: np.ndarray, area: np.ndarray, hits: np.ndarray, ident: np.ndarray,
    value: np.ndarray, speed: np.ndarray, started: np.ndarray, next_id: np.ndarray, new: np.ndarray,
    min_hits: int, weight: float, smooth: bool, min_cutoff: float, beta: float, d_cutoff: float,
    out: np.ndarray, ids: np.ndarray,
) -> None:  # fmt: skip
    """Person j observed by track rows[j] (a fresh row where new[j]): state, filter, ID, output."""
    kk = people.shape[1]
    for j in range(rows.shape[0]):
        t = rows[j]
        found = people[j, :, 2] > 0
        dt = now - last_time[t]
        if new[j]:
            known[t, :] = False
            velocity[t, :] = 0.0
            area[t], hits[t], ident[t] = 0.0, 0, -1
            started[t, :] = False
            dt = 0.0
        elif dt > 0:
            vx, vy, count = 0.0, 0.0, 0
            for k in range(kk):
                if found[k] and known[t, k]:
                    vx += people[j, k, 0] - position[t, k, 0]
                    vy += people[j, k, 1] - position[t, k, 1]
                    count += 1
            if count:
                velocity[t, 0] += weight * (vx / count / dt - velocity[t, 0])
                velocity[t, 1] += weight * (vy / count / dt - velocity[t, 1])
        for k in range(kk):
            if found[k]:
                position[t, k, 0], position[t, k, 1] = people[j, k, 0], people[j, k, 1]
                known[t, k] = True
        x0, y0, x1, y1 = _box(people[j, :, :2], found)
        area[t] = max(area[t], (x1 - x0) * (y1 - y0))
        last_time[t] = now
        hits[t] += 1
        one_euro_step(value[t], speed[t], started[t], people[j, :, :2], found, dt, min_cutoff, beta, d_cutoff)
        if ident[t] < 0 and hits[t] >= min_hits:
            ident[t] = next_id[0]
            next_id[0] += 1
        ids[j] = ident[t]
        if smooth and ident[t] >= 0:
            for k in range(kk):
                if found[k]:
                    out[j, k, 0], out[j, k, 1] = value[t, k, 0], value[t, k, 1]


class PoseTracker(ResultStage):
    """One per stream. `update(poses, timestamp)` returns the poses with `track_ids` (and, when
    smoothing, smoothed keypoints); as a `ResultStage` it does that to each `Result`."""

    name = TRACK

    def __init__(
        self,
        params: TrackerParams = TrackerParams(),
        sigmas: Sequence[float] = COCO_OKS_SIGMAS,
        time_of: Callable[[Result], float] = lambda result: result.timestamp,
    ) -> None:
        """`time_of`: a result's time in seconds; capture time by default, a file's own time
        (index / fps) where frames are read faster or slower than they were filmed."""
        self.params = params
        self.time_of = time_of
        self.k2 = (2.0 * np.asarray(sigmas, np.float64)) ** 2
        self.count = 0  # live tracks: rows [0, count) of the state arrays
        self.next_id = np.ones(1, np.int64)
        self.last_time = -math.inf
        self._allocate(16)

    def _allocate(self, capacity: int) -> None:
        """State arrays for `capacity` tracks, keeping the live ones (grows by doubling)."""
        k, n = len(self.k2), self.count
        fresh = {
            "position": np.zeros((capacity, k, 2)), "velocity": np.zeros((capacity, 2)),
            "known": np.zeros((capacity, k), np.bool_), "track_time": np.zeros(capacity),
            "area": np.zeros(capacity), "hits": np.zeros(capacity, np.int64),
            "ident": np.full(capacity, -1, np.int64), "value": np.zeros((capacity, k, 2)),
            "speed": np.zeros((capacity, k, 2)), "started": np.zeros((capacity, k), np.bool_),
        }  # fmt: skip
        for name, array in fresh.items():
            if n:
                array[:n] = getattr(self, name)[:n]
            setattr(self, name, array)

    @property
    def ids(self) -> np.ndarray:
        """IDs of the live tracks (-1: tentative)."""
        return self.ident[: self.count].copy()

    def __call__(self, result: Result) -> Result:
        if result.skipped:  # no picture, so no evidence either way: tracks just age
            result.poses = dataclasses.replace(result.poses, track_ids=np.zeros(len(result.poses), np.int64))
            return result
        result.poses = self.update(result.poses, self.time_of(result))
        return result

    def update(self, poses: Poses, timestamp: float) -> Poses:
        from scipy.optimize import linear_sum_assignment

        p = self.params
        if timestamp < self.last_time:
            raise ValueError(f"timestamps must not go back in a stream ({timestamp} < {self.last_time})")
        self.last_time = timestamp
        people = np.ascontiguousarray(poses.keypoints, np.float64)
        m, n = people.shape[0], self.count
        rows = np.full(m, -1, np.int64)
        matched = np.zeros(n, np.bool_)
        if n and m:
            sim = _similarity(self.position, self.velocity, self.known, self.track_time, self.area, n,
                              timestamp, people, self.k2, p.min_common_keypoints)  # fmt: skip
            usable = np.where(sim >= p.min_similarity, sim, 0.0)  # a pair below it never helps a sum
            for t, j in zip(*linear_sum_assignment(usable, maximize=True)):
                if usable[t, j] > 0:
                    rows[j], matched[t] = t, True
        # unmatched tentative tracks end now, lost confirmed ones when too old
        keep = matched | ((self.ident[:n] >= 0) & (timestamp - self.track_time[:n] <= p.max_age_s))
        if not keep.all():
            kept = np.flatnonzero(keep)
            for name in ("position", "velocity", "known", "track_time", "area", "hits", "ident", "value",
                         "speed", "started"):  # fmt: skip
                array = getattr(self, name)
                array[: len(kept)] = array[kept]
            remap = np.full(n, -1, np.int64)
            remap[kept] = np.arange(len(kept))
            rows[rows >= 0] = remap[rows[rows >= 0]]
            self.count = n = len(kept)
        new = rows < 0
        if new.any():
            if n + int(new.sum()) > len(self.ident):
                self._allocate(max(2 * len(self.ident), n + int(new.sum())))
            rows[new] = np.arange(n, n + int(new.sum()))
            self.count = n + int(new.sum())
        ids = np.full(m, -1, np.int64)
        keypoints = np.array(poses.keypoints, np.float32, copy=True)
        e = p.one_euro
        _update(rows, people, timestamp, self.position, self.velocity, self.known, self.track_time, self.area,
                self.hits, self.ident, self.value, self.speed, self.started, self.next_id, new, p.min_hits,
                p.velocity_smoothing, p.smooth, e.min_cutoff, e.beta, e.d_cutoff, keypoints, ids)  # fmt: skip
        raw = np.asarray(poses.keypoints, np.float32) if p.smooth else None
        return dataclasses.replace(poses, keypoints=keypoints, track_ids=ids, raw_keypoints=raw)
