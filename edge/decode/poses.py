"""`Poses`: what the decoder returns for one frame, in source-image pixels and COCO-17 order."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List

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
    """

    keypoints: np.ndarray
    scores: np.ndarray
    counters: DecodeCounters = field(default_factory=DecodeCounters)

    def __post_init__(self) -> None:
        """Refuse arrays that do not describe the same N people (sinks and trackers index both)."""
        k, s = np.asarray(self.keypoints), np.asarray(self.scores)
        if k.ndim != 3 or k.shape[2] != 3 or s.ndim != 1 or k.shape[0] != s.shape[0]:
            raise ValueError(
                "Poses needs keypoints [N, K, 3] and scores [N] for the same N, "
                f"found {k.shape} and {s.shape}"
            )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def to_coco_results(self, image_id: int) -> List[Dict[str, Any]]:
        """COCO keypoint results: visibility 1 where a keypoint was found, else 0 at (0, 0)."""
        results = []
        for kps, score in zip(self.keypoints, self.scores):
            flat = []
            for x, y, s in kps:
                found = s > 0
                flat += [float(x) if found else 0.0, float(y) if found else 0.0, 1 if found else 0]
            results.append(
                {"image_id": int(image_id), "category_id": 1, "keypoints": flat, "score": float(score)}
            )
        return results
