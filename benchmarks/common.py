"""Helpers every benchmark shares: default data paths, statistics, JSON. (COCO loading and
scoring: `edge.coco`.)"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any, Dict, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEV538_ANNOTATIONS = SHARED_DATA / "coco_val2017_person_keypoints_dev538.json"
DEV538_IMAGES = SHARED_DATA / "images" / "coco_val2017_dev538"
RESULTS_DIR = Path("results")  # relative to where a benchmark is run (the repository root)
# 80 real people (official COCO val2017 keypoints, CC BY 4.0), shipped so benchmarks that need
# poses, not pictures, also run where ../shared/data is absent.
BUNDLED_PEOPLE = Path(__file__).resolve().parent / "data" / "coco_val2017_people80.json"


class UsageError(Exception):
    """A user mistake (missing file, bad model or source, unwritable output): one line, exit 2."""


def default_people_annotations() -> Path:
    """The dev538 annotations beside the checkout when present, else the bundled sample."""
    return DEV538_ANNOTATIONS if DEV538_ANNOTATIONS.is_file() else BUNDLED_PEOPLE


def time_stats(samples_s: Sequence[float]) -> Dict[str, float]:
    """min, median, p90, p99, max and mean of durations given in seconds, in milliseconds."""
    ms = np.asarray(samples_s, np.float64) * 1e3
    if ms.size == 0:
        return {k: float("nan") for k in ("min", "median", "p90", "p99", "max", "mean")}
    return {
        "min": float(ms.min()),
        "median": float(np.median(ms)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "mean": float(ms.mean()),
    }


def environment() -> Dict[str, Any]:
    import numba

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def write_json(path: Path, payload: Dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    return path
