"""`Poses`: what the decoder returns for one frame, in source-image pixels and COCO-17 order."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np


@dataclass
class DecodeCounters:
    """What the decoder had to drop or ignore in one frame; all zero on a clean frame."""

    peaks_dropped: int = 0  # peaks beyond the per-type capacity (the weakest were dropped)
    people_dropped: int = 0  # new people beyond the people capacity
    nonfinite_cells: int = 0  # NaN or Inf heatmap cells (treated as 0)

    def as_dict(self) -> Dict[str, int]:
        return asdict(self)


@dataclass
class Poses:
    """People found in one frame.

    keypoints: float32 [N, 17, 3]  x, y in source-image pixels (pixel centres at integers) and
                                   the keypoint score; a missing keypoint is (0, 0, 0)
    scores:    float32 [N]         person score (1 - 1/total, as the Simple Pose reference)

    A tracker (`edge.tracking.PoseTracker`) fills in:
    track_ids:     int64 [N]       the person's ID in this stream, -1 while not yet confirmed
    raw_keypoints: float32 [N, 17, 3] the decoder's keypoints where `keypoints` were smoothed
    """

    keypoints: np.ndarray
    scores: np.ndarray
    counters: DecodeCounters = field(default_factory=DecodeCounters)
    track_ids: Optional[np.ndarray] = None
    raw_keypoints: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        """Refuse arrays that do not describe the same N people (sinks and trackers index both)."""
        k, s = np.asarray(self.keypoints), np.asarray(self.scores)
        if k.ndim != 3 or k.shape[2] != 3 or s.ndim != 1 or k.shape[0] != s.shape[0]:
            raise ValueError(
                "Poses needs keypoints [N, K, 3] and scores [N] for the same N, "
                f"found {k.shape} and {s.shape}"
            )
        if self.track_ids is not None and np.shape(self.track_ids) != s.shape:
            raise ValueError(f"track_ids must be [N] = {s.shape}, found {np.shape(self.track_ids)}")
        if self.raw_keypoints is not None and np.shape(self.raw_keypoints) != k.shape:
            raise ValueError(f"raw_keypoints must be {k.shape}, found {np.shape(self.raw_keypoints)}")

    @property
    def smoothed(self) -> bool:
        return self.raw_keypoints is not None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def to_coco_results(self, image_id: int) -> List[Dict[str, Any]]:
        """COCO keypoint results: visibility 1 where a keypoint was found, else 0 at (0, 0). Always
        the decoder's keypoints (smoothing does not change COCO results)."""
        results = []
        keypoints = self.keypoints if self.raw_keypoints is None else self.raw_keypoints
        for kps, score in zip(keypoints, self.scores):
            flat = []
            for x, y, s in kps:
                found = s > 0
                flat += [float(x) if found else 0.0, float(y) if found else 0.0, 1 if found else 0]
            results.append(
                {"image_id": int(image_id), "category_id": 1, "keypoints": flat, "score": float(score)}
            )
        return results
