"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) over a fixed-shape array of coordinates.

A low-pass filter whose cutoff rises with speed: still keypoints are smoothed hard (jitter goes),
moving ones lightly (little lag). Driven by timestamps, so dropped frames widen the step instead of
being ignored. One filter holds one person's keypoints; entries flagged missing are not updated and
restart from their next observation. State is preallocated: an update allocates nothing but its
temporaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    """min_cutoff (Hz): smoothing of a still point (lower is smoother); beta: how fast the cutoff
    rises with speed (px/s; higher is less lag); d_cutoff (Hz): smoothing of the speed estimate."""

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError(f"One-Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, found {self}")


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """Filters arrays of `shape` (e.g. (17, 2)); `valid` (shape[:-1]) says which rows were seen."""

    def __init__(self, shape: Tuple[int, ...], params: OneEuroParams = OneEuroParams()) -> None:
        self.params = params
        self.value = np.zeros(shape, np.float64)
        self.speed = np.zeros(shape, np.float64)
        self.started = np.zeros(shape[:-1], bool)
        self.last_time: Optional[float] = None

    def __call__(self, x: np.ndarray, timestamp: float, valid: Optional[np.ndarray] = None) -> np.ndarray:
        """The filtered value of `x` observed at `timestamp` (seconds); rows not `valid` keep their
        last filtered value and start afresh when seen again."""
        seen = np.ones(self.started.shape, bool) if valid is None else np.asarray(valid, bool)
        fresh = seen & ~self.started
        self.value[fresh] = x[fresh]
        self.speed[fresh] = 0.0
        dt = None if self.last_time is None else timestamp - self.last_time
        if dt is not None and dt > 0:
            going = seen & self.started
            p = self.params
            rate = (x - self.value) / dt
            a_d = _alpha(np.asarray(p.d_cutoff), dt)
            speed = self.speed + a_d * (rate - self.speed)
            cutoff = p.min_cutoff + p.beta * np.abs(speed)
            value = self.value + _alpha(cutoff, dt) * (x - self.value)
            self.speed[going] = speed[going]
            self.value[going] = value[going]
        np.copyto(self.started, seen)  # a row unseen now restarts from its next observation
        self.last_time = timestamp
        return self.value
