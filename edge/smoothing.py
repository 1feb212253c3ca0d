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
from numba import njit


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


@njit(cache=True, nogil=True)
def one_euro_step(
    value: np.ndarray, speed: np.ndarray, started: np.ndarray, x: np.ndarray, seen: np.ndarray,
    dt: float, min_cutoff: float, beta: float, d_cutoff: float,
) -> None:  # fmt: skip
    """One observation for rows [R, D] of a filter, in place: `value`/`speed` [R, D] are its state,
    `started` [R] which rows have one, `seen` [R] which rows `x` observes, `dt` seconds since the
    previous observation (<= 0: none before, or a repeated timestamp). An unseen row restarts from
    its next observation."""
    a_d = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * d_cutoff * dt)) if dt > 0 else 0.0
    for r in range(value.shape[0]):
        if not seen[r]:
            started[r] = False
            continue
        if not started[r]:
            for c in range(value.shape[1]):
                value[r, c] = x[r, c]
                speed[r, c] = 0.0
            started[r] = True
            continue
        if dt <= 0:
            continue
        for c in range(value.shape[1]):
            rate = (x[r, c] - value[r, c]) / dt
            speed[r, c] += a_d * (rate - speed[r, c])
            cutoff = min_cutoff + beta * abs(speed[r, c])
            a = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))
            value[r, c] += a * (x[r, c] - value[r, c])


class OneEuro:
    """Filters arrays of `shape` [R, D] (e.g. one person's (17, 2) keypoints); `valid` [R] says
    which rows were seen."""

    def __init__(self, shape: Tuple[int, int], params: OneEuroParams = OneEuroParams()) -> None:
        self.params = params
        self.value = np.zeros(shape, np.float64)
        self.speed = np.zeros(shape, np.float64)
        self.started = np.zeros(shape[0], np.bool_)
        self.last_time: Optional[float] = None

    def __call__(self, x: np.ndarray, timestamp: float, valid: Optional[np.ndarray] = None) -> np.ndarray:
        """The filtered value of `x` observed at `timestamp` (seconds); rows not `valid` keep their
        last filtered value and start afresh when seen again."""
        seen = np.ones(self.started.shape, np.bool_) if valid is None else np.asarray(valid, np.bool_)
        dt = 0.0 if self.last_time is None else timestamp - self.last_time
        p = self.params
        one_euro_step(self.value, self.speed, self.started, np.asarray(x, np.float64), seen, dt,
                      p.min_cutoff, p.beta, p.d_cutoff)  # fmt: skip
        self.last_time = timestamp
        return self.value
