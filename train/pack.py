"""Pack a COCO keypoint set small: photos resized so the longer side is the training input size,
JPEG, with every annotation scaled to match (keypoints, boxes, polygons, crowd RLE masks, areas).

    python -m train.pack --images DIR --annotations FILE --size 256 --out packed/coco2k-256

A lent GPU machine receives at most 64 MiB per call and cannot reach the shared data: 2022
training photos are 102 MB as they are, about 20 MB packed at 256. Training on the packed set
sees what it would see on the originals (the trainer letterboxes to the same size anyway) up to
one extra resampling. Coordinates follow the pixel-centre convention: x' = (x + 0.5) s - 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np

JPEG_QUALITY = 90


def scale_annotation(ann: Dict[str, Any], sx: float, sy: float, width: int, height: int) -> Dict[str, Any]:
    """`ann` for the image resized by (sx, sy) to `width` x `height` pixels (the two scales differ
    by the rounding of the image size)."""
    out = dict(ann)
    scale = np.array([sx, sy])
    if "keypoints" in ann:
        kps = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
        labelled = kps[:, 2] > 0
        kps[labelled, :2] = (kps[labelled, :2] + 0.5) * scale - 0.5
        out["keypoints"] = [round(float(v), 3) for v in kps.ravel()]
    if ann.get("bbox"):
        out["bbox"] = [round(float(v) * f, 3) for v, f in zip(ann["bbox"], (sx, sy, sx, sy))]
    if "area" in ann:
        out["area"] = float(ann["area"]) * sx * sy
    segmentation = ann.get("segmentation")
    if isinstance(segmentation, list):
        out["segmentation"] = [
            [round(float(v) * (sx if i % 2 == 0 else sy), 3) for i, v in enumerate(polygon)]
            for polygon in segmentation
        ]
    elif isinstance(segmentation, dict):  # crowd RLE: decode, resize, encode again
        from pycocotools import mask as mask_utils

        rle = segmentation
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        small = cv2.resize(mask_utils.decode(rle), (width, height), interpolation=cv2.INTER_NEAREST)
        encoded = mask_utils.encode(np.asfortranarray(small.astype(np.uint8)))
        out["segmentation"] = {"size": [height, width], "counts": encoded["counts"].decode("ascii")}
    return out


def pack(
    images: str,
    annotations: str,
    size: int,
    out: str,
    limit: Optional[int] = None,
    quality: int = JPEG_QUALITY,
) -> Dict[str, Any]:
    """Write `out/images/*.jpg` and `out/annotations.json`; returns a summary."""
    with open(annotations) as f:
        data = json.load(f)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    kept: List[Dict[str, Any]] = []
    scales: Dict[int, tuple] = {}
    for info in data["images"][:limit]:
        path = os.path.join(images, info["file_name"])
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            continue
        height, width = image.shape[:2]
        s = min(1.0, size / max(width, height))  # never enlarge
        new_w, new_h = max(1, round(width * s)), max(1, round(height * s))
        small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA) if s < 1 else image
        name = os.path.splitext(info["file_name"])[0] + ".jpg"
        cv2.imwrite(os.path.join(out, "images", name), small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        kept.append({**info, "file_name": name, "width": new_w, "height": new_h})
        scales[int(info["id"])] = (new_w / width, new_h / height, new_w, new_h)
    anns = [
        scale_annotation(a, *scales[int(a["image_id"])])
        for a in data["annotations"]
        if int(a["image_id"]) in scales
    ]
    packed = {**data, "images": kept, "annotations": anns}
    with open(os.path.join(out, "annotations.json"), "w") as f:
        json.dump(packed, f)
    folder = os.path.join(out, "images")
    size_bytes = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    return {"images": len(kept), "annotations": len(anns), "megabytes": round(size_bytes / 2**20, 1)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.pack", description=__doc__.split("\n")[0])
    p.add_argument("--images", required=True)
    p.add_argument("--annotations", required=True)
    p.add_argument("--size", type=int, default=256, help="longer side in pixels (the training input size)")
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument(
        "--quality", type=int, default=JPEG_QUALITY, help=f"JPEG quality (default {JPEG_QUALITY}; "
        "75, the quality of the shared training photos, keeps a 512 pack within one call's 64 MiB)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if not 1 <= args.quality <= 100:
        p.error(f"--quality must be 1 to 100, found {args.quality}")
    print(json.dumps(pack(args.images, args.annotations, args.size, args.out, args.limit, args.quality)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
