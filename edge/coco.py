"""COCO person keypoints: ground truth loaded once, and keypoint AP/AR by pycocotools' COCOeval
(the `bench` extra, imported when scoring). Used by the benchmarks and by training's evaluation."""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Sequence

from edge.errors import BKPoseError

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR")


class AnnotationError(BKPoseError):
    """A COCO annotation file is missing."""


def load_coco_keypoints(path: Path) -> Dict[str, Any]:
    """A COCO person-keypoints file, parsed once: {'dataset', 'images', 'by_image', 'path'}."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"annotation file not found: {path} (pass --annotations FILE)")
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
