"""`Result`: one frame's output of the pipelined runner, as sinks, trackers and callers see it.

It lives apart from the runner so that what consumes results (sinks, a tracker, a fleet output)
depends on this small type, not on the threads that make it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from edge.decode.poses import Poses


@dataclass
class Result:
    """One frame's output, in frame order."""

    index: int
    timestamp: float
    source_size: Tuple[int, int]  # (width, height); (0, 0) for a skipped frame
    poses: Poses
    timings_ms: Dict[str, float] = field(default_factory=dict)
    counters: Dict[str, int] = field(default_factory=dict)
    skipped: str = ""  # why the frame was not processed ("" when it was)
    converted: str = ""  # the conversion rule applied to the frame, if any
    image: Optional[np.ndarray] = None  # the (converted) frame, for drawing
    name: str = ""
    stream: str = ""  # the source's name when several run at once (PoseEstimator.stream_many)


class ResultStage:
    """A per-stream step after decoding: a tracker, a smoother, a counter. The runner calls it on
    every result of its stream, in frame order, in the decode thread, and records its time under
    `name` (an `edge.stages` name, so the bench reports it). It owns its per-stream state: one
    instance per stream. It may change the result and returns it."""

    name = "stage"

    def __call__(self, result: Result) -> Result:
        raise NotImplementedError


def empty_poses() -> Poses:
    return Poses(np.zeros((0, 17, 3), np.float32), np.zeros((0,), np.float32))
