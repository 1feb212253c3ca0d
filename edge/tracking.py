"""People keep one ID across the frames of a stream: bottom-up pose tracking on keypoints.

Each frame's people are matched to the stream's tracks by pose similarity (OKS with the layout's
sigmas against each track's constant-velocity prediction; box IoU for people who share fewer than
a few found keypoints with the track), with an optimal assignment (`scipy.optimize.
linear_sum_assignment`; scipy has Python 3.8 aarch64 wheels). A track is tentative until it has
been matched `min_hits` times, then confirmed and given the next ID, never reused in the stream.
A confirmed track that goes unmatched is lost, predicted forward, and kept for `max_age_s` seconds
of timestamps (so dropped frames do not shorten it); a person reappearing near the prediction gets
their ID back. Confirmed people's keypoints are smoothed by a One-Euro filter; the decoder's are
kept in `Poses.raw_keypoints`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np

from edge.decode.agreement import oks_matrix
from edge.decode.poses import Poses
from edge.layout import COCO_OKS_SIGMAS
from edge.results import Result, ResultStage
from edge.smoothing import OneEuro, OneEuroParams
from edge.stages import TRACK


@dataclass(frozen=True)
class TrackerParams:
    min_similarity: float = 0.2  # OKS (or IoU) below which a person is not the track
    min_common_keypoints: int = 3  # fewer found in both the track and the person: box IoU instead
    min_hits: int = 3  # matches before a track is confirmed and gets an ID
    max_age_s: float = 1.0  # how long a lost confirmed track waits to be found again
    velocity_smoothing: float = 0.5  # weight of the newest velocity in its running average
    smooth: bool = True  # One-Euro filter on confirmed people's keypoints
    one_euro: OneEuroParams = field(default_factory=OneEuroParams)

    def __post_init__(self) -> None:
        if not 0 <= self.min_similarity < 1 or self.min_hits < 1 or self.max_age_s < 0:
            raise ValueError(f"tracker needs 0 <= min_similarity < 1, min_hits >= 1, max_age_s >= 0: {self}")
        if not 0 < self.velocity_smoothing <= 1:
            raise ValueError(f"velocity_smoothing must be in (0, 1], found {self.velocity_smoothing}")


class Track:
    """One person's state: last seen keypoints (and which were ever seen), velocity, filter."""

    def __init__(self, keypoints: np.ndarray, timestamp: float, params: TrackerParams) -> None:
        k = keypoints.shape[0]
        self.position = keypoints[:, :2].astype(np.float64)
        self.known = keypoints[:, 2] > 0
        self.velocity = np.zeros((k, 2), np.float64)  # px/s
        self.last_time = timestamp
        self.hits = 1
        self.id = -1
        self.filter = OneEuro((k, 2), params.one_euro)

    def predicted(self, timestamp: float) -> np.ndarray:
        """[K, 3]: where the known keypoints should be now (constant velocity), score 1 if known."""
        out = np.zeros((self.position.shape[0], 3), np.float64)
        out[:, :2] = self.position + self.velocity * max(timestamp - self.last_time, 0.0)
        out[:, 2] = self.known
        return out

    def update(self, keypoints: np.ndarray, timestamp: float, weight: float) -> None:
        seen = keypoints[:, 2] > 0
        dt = timestamp - self.last_time
        both = seen & self.known
        if dt > 0 and both.any():
            rate = (keypoints[both, :2] - self.position[both]) / dt
            self.velocity[both] += weight * (rate - self.velocity[both])
        self.velocity[seen & ~self.known] = 0.0
        self.position[seen] = keypoints[seen, :2]
        self.known |= seen
        self.last_time = timestamp
        self.hits += 1


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of the found-keypoint boxes of every (a, b) pair; [N, K, 3] and [M, K, 3]."""

    def boxes(kps: np.ndarray) -> np.ndarray:
        found = kps[:, :, 2:] > 0
        low = np.where(found, kps[:, :, :2], np.inf).min(axis=1)
        high = np.where(found, kps[:, :, :2], -np.inf).max(axis=1)
        empty = ~found.any(axis=(1, 2))
        low[empty], high[empty] = 0.0, 0.0
        return np.concatenate([low, high], axis=1)

    ba, bb = boxes(a), boxes(b)
    lo = np.maximum(ba[:, None, :2], bb[None, :, :2])
    hi = np.minimum(ba[:, None, 2:], bb[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=2)
    area_a = (ba[:, 2:] - ba[:, :2]).prod(axis=1)
    area_b = (bb[:, 2:] - bb[:, :2]).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


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
        self.sigmas = tuple(sigmas)
        self.tracks: List[Track] = []
        self._ids = itertools.count(1)
        self._last_time: Optional[float] = None

    def __call__(self, result: Result) -> Result:
        if result.skipped:  # no picture, so no evidence either way: tracks just age
            result.poses = dataclasses.replace(result.poses, track_ids=np.zeros(len(result.poses), np.int64))
            return result
        result.poses = self.update(result.poses, self.time_of(result))
        return result

    def similarity(self, people: np.ndarray, timestamp: float) -> np.ndarray:
        """[tracks, people]: OKS against each track's prediction over the keypoints found in both
        (a partly hidden person still matches), box IoU where fewer than `min_common_keypoints`."""
        predicted = np.stack([t.predicted(timestamp) for t in self.tracks])
        oks = oks_matrix(predicted, people, self.sigmas, over_common=True)
        common = ((predicted[:, None, :, 2] > 0) & (people[None, :, :, 2] > 0)).sum(axis=2)
        oks[common < self.params.min_common_keypoints] = 0.0
        return np.maximum(oks, box_iou(predicted, people))

    def update(self, poses: Poses, timestamp: float) -> Poses:
        from scipy.optimize import linear_sum_assignment

        p = self.params
        people = np.asarray(poses.keypoints, np.float64)
        n = people.shape[0]
        if self._last_time is not None and timestamp < self._last_time:
            raise ValueError(f"timestamps must not go back in a stream ({timestamp} < {self._last_time})")
        self._last_time = timestamp
        owner: List[Optional[Track]] = [None] * n
        if self.tracks and n:
            sim = self.similarity(people, timestamp)
            rows, cols = linear_sum_assignment(-sim)
            for r, c in zip(rows, cols):
                if sim[r, c] >= p.min_similarity:
                    owner[c] = self.tracks[r]
        matched = {id(t) for t in owner if t is not None}
        self.tracks = [
            t
            for t in self.tracks
            if id(t) in matched or (t.id >= 0 and timestamp - t.last_time <= p.max_age_s)
        ]  # fmt: skip  (unmatched tentative tracks go at once, lost confirmed ones when too old)
        ids = np.full(n, -1, np.int64)
        keypoints = np.array(poses.keypoints, np.float32, copy=True)
        for i in range(n):
            track = owner[i]
            if track is None:
                track = Track(people[i], timestamp, p)
                self.tracks.append(track)
            else:
                track.update(people[i], timestamp, p.velocity_smoothing)
            seen = people[i, :, 2] > 0
            smoothed = track.filter(people[i, :, :2], timestamp, seen)
            if track.id < 0 and track.hits >= p.min_hits:
                track.id = next(self._ids)
            ids[i] = track.id
            if p.smooth and track.id >= 0:
                keypoints[i, seen, :2] = smoothed[seen]
        raw = np.asarray(poses.keypoints, np.float32) if p.smooth else None
        return dataclasses.replace(poses, keypoints=keypoints, track_ids=ids, raw_keypoints=raw)
