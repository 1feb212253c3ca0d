"""`bkpose-bench --accuracy`: COCO keypoint AP of each precision variant through the runtime path,
and the OKS agreement of each with FP32."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List

import numpy as np

from benchmarks.bench_models import ModelRun, with_ov_precision
from benchmarks.common import UsageError

# Gaussian noise added to the FP32 model's own maps (values about 0..1): the agreement that a
# near-lossless change already costs on this model, to read the precisions' agreement against.
NOISE_SIGMAS = (1e-4, 1e-3)


def accuracy(models: List[ModelRun], args: argparse.Namespace) -> Dict[str, Any]:
    """COCO keypoint AP of every precision variant and its OKS agreement with the FP32 poses."""
    import cv2

    from edge.backends.choice import backend_choice
    from edge.coco import coco_keypoint_scores, load_coco_keypoints
    from edge.decode.agreement import agreement
    from edge.pipeline import PoseEstimator
    from edge.preprocess import validate_frame

    coco = load_coco_keypoints(args.annotations)
    images = [im for im in coco["images"] if os.path.exists(os.path.join(args.images, im["file_name"]))]
    if not images:
        raise UsageError(f"none of the annotated images is under {args.images}")
    per_model: Dict[str, Any] = {}
    poses_of: Dict[str, List[Any]] = {}
    noisy: Dict[float, List[Any]] = {}
    from tqdm import tqdm

    for entry in models:
        path = entry.path
        with PoseEstimator(path, **backend_choice(with_ov_precision(args, entry))) as estimator:
            estimator.warmup()
            results, poses = [], []
            name = os.path.basename(path)
            precision = entry.label or estimator.info.precision
            floor = precision == "fp32"  # not bf16 compute of the same FP32 file
            rng = np.random.default_rng(0)
            for image in tqdm(images, desc=name, unit="image", file=sys.stderr, dynamic_ncols=True):
                frame = cv2.imread(os.path.join(args.images, image["file_name"]))
                heatmaps, lb, _ = estimator.backend.run(validate_frame(frame))
                found = estimator.decoder.decode(heatmaps, lb)
                for sigma in NOISE_SIGMAS if floor else ():
                    noise = rng.normal(0.0, sigma, heatmaps.shape).astype(np.float32)
                    noisy.setdefault(sigma, []).append(estimator.decoder.decode(heatmaps + noise, lb))
                poses.append(found)
                results.extend(found.to_coco_results(image["id"]))
        per_model[precision] = {
            "model": os.path.abspath(path),
            "coco": coco_keypoint_scores(coco, results, [i["id"] for i in images]),
        }
        poses_of[precision] = poses
    reference = "fp32" if "fp32" in poses_of else next(iter(poses_of))
    for precision, entry in per_model.items():
        entry["agreement_with_" + reference] = agreement(zip(poses_of[reference], poses_of[precision]))
        entry["ap_drop"] = per_model[reference]["coco"]["AP"] - entry["coco"]["AP"]
    print(f"\naccuracy on {len(images)} images of {args.annotations}")
    print(
        f"{'precision':<10} {'AP':>7} {'AP50':>7} {'AR':>7} {'AP drop':>8} {'mean OKS vs ' + reference:>18}"
    )
    for precision, entry in per_model.items():
        c, agree = entry["coco"], entry["agreement_with_" + reference]
        oks = "n/a" if agree["mean_oks"] is None else f"{agree['mean_oks']:.3f}"
        scores = f"{c['AP']:>7.3f} {c['AP50']:>7.3f} {c['AR']:>7.3f}"
        print(f"{precision:<10} {scores} {entry['ap_drop']:>8.3f} {oks:>18}")
    floor_rows = [{"sigma": s, "agreement": agreement(zip(poses_of["fp32"], p))} for s, p in noisy.items()]
    if floor_rows:
        said = ", ".join(f"sigma {r['sigma']:g}: {r['agreement']['mean_oks'] or 0:.3f}" for r in floor_rows)
        print(f"for scale: FP32 against its own maps plus Gaussian noise, mean OKS {said}")
    return {
        "images": len(images),
        "reference": reference,
        "by_precision": per_model,
        "noise_floor": floor_rows,
    }
