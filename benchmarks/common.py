"""Helpers every benchmark shares: default data paths, COCO loading and scoring, statistics, JSON."""

from __future__ import annotations

import contextlib
import io
import json
import platform
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEV538_ANNOTATIONS = SHARED_DATA / "coco_val2017_person_keypoints_dev538.json"
RESULTS_DIR = Path("results")  # relative to where a benchmark is run (the repository root)
# 80 real people (official COCO val2017 keypoints, CC BY 4.0), shipped so benchmarks that need
# poses, not pictures, also run where ../shared/data is absent.
BUNDLED_PEOPLE = Path(__file__).resolve().parent / "data" / "coco_val2017_people80.json"


class UsageError(Exception):
    """A user mistake (missing file, bad model or source, unwritable output): one line, exit 2."""


def default_people_annotations() -> Path:
    """The dev538 annotations beside the checkout when present, else the bundled sample."""
    return DEV538_ANNOTATIONS if DEV538_ANNOTATIONS.is_file() else BUNDLED_PEOPLE


COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR")


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


def load_coco_keypoints(path: Path) -> Dict[str, Any]:
    """A COCO person-keypoints file, parsed once: {'dataset', 'images', 'by_image', 'path'}."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"annotation file not found: {path} (pass --annotations FILE)")
    with open(path) as f:
        data = json.load(f)
    by_image: Dict[int, List[dict]] = defaultdict(list)
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann)
    return {"dataset": data, "images": data["images"], "by_image": by_image, "path": path}


def coco_keypoint_scores(
    coco: Dict[str, Any], results: List[dict], image_ids: Sequence[int]
) -> Dict[str, float]:
    """COCO keypoint AP/AR (pycocotools COCOeval, iouType 'keypoints') on `image_ids`, against the
    ground truth of `coco` as returned by `load_coco_keypoints` (not read from disk again)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {name: 0.0 for name in COCO_STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco["dataset"]
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(ev.stats[i]) for i, name in enumerate(COCO_STAT_NAMES)}  # stats[5] = AR


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
