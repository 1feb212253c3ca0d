"""BK-Pose on every CPU backend in one run, on the same frames: end-to-end FPS (bkpose-bench's
pipelined loop), inference ms, and the ratio to the CPU peers' figures on this 2-core machine
(issue 21: YOLO11n-pose and Lightweight OpenPose on OpenVINO, about 27 FPS end to end; those two
are quoted, not re-measured here). With `--annotations/--images`, also each variant's COCO AP and
mean OKS agreement with ONNX Runtime FP32 (the fidelity `auto` needs).

    python -m benchmarks.cpu_backends --model engines/m.fp32.onnx [--source video.mp4] [--frames 100]
        [--annotations A.json --images DIR] [--json results/cpu_backends.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.bench_runs import bench_model
from benchmarks.common import RESULTS_DIR, write_json

PEER_FPS = {"YOLO11n-pose, OpenVINO (quoted)": 27.0, "Lightweight OpenPose, OpenVINO (quoted)": 27.0}


def variants(model: str) -> List[Dict[str, Any]]:
    """(label, file, backend, OpenVINO precision) for every CPU runtime and file that exist."""
    int8 = model.replace(".fp32.onnx", ".int8.onnx")
    rows = [{"label": "onnxruntime fp32", "model": model, "backend": "ort", "ov": "f32"}]
    if os.path.exists(int8):
        rows.append({"label": "onnxruntime int8 q/dq", "model": int8, "backend": "ort", "ov": "f32"})
    from edge.backends.openvino import cpu_has_bf16, openvino_available

    if openvino_available():
        rows.append({"label": "openvino f32", "model": model, "backend": "openvino", "ov": "f32"})
        if cpu_has_bf16():
            rows.append({"label": "openvino bf16", "model": model, "backend": "openvino", "ov": "bf16"})
        if os.path.exists(int8):
            rows.append({"label": "openvino int8 q/dq", "model": int8, "backend": "openvino", "ov": "f32"})
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cpu_backends", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="the FP32 ONNX file (its .int8.onnx beside it is used too)")
    p.add_argument("--source", help="video or image folder (default: generated frames)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--annotations", help="COCO keypoints JSON for AP and agreement")
    p.add_argument("--images", help="the annotated images")
    p.add_argument("--json", default=str(RESULTS_DIR / "cpu_backends.json"))
    args = p.parse_args(argv)
    rows = []
    for v in variants(args.model):
        run_args = argparse.Namespace(
            source=args.source, frames=args.frames, duration=None, warmup=1.0, mode="pipelined", device="cpu",
            threads=args.threads, backend=v["backend"], ov_precision=v["ov"],
        )  # fmt: skip
        run = bench_model(v["model"], run_args)
        precision = run["backend"].get("inference_precision", run["precision"])
        row = {**v, "fps": run["fps"], "infer_ms_median": run["stages_ms"]["infer"]["median"],
               "inference_precision": precision}  # fmt: skip
        rows.append(row)
        ratio = row["fps"] / max(PEER_FPS.values())
        print(f"{v['label']:<24} {row['fps']:6.1f} FPS end to end, inference "
              f"{row['infer_ms_median']:6.1f} ms (median), {ratio:.2f}x the peers", flush=True)  # fmt: skip
    if args.annotations and args.images:
        fidelity(rows, args)
    print(f"JSON -> {write_json(args.json, {'peers_fps_quoted': PEER_FPS, 'rows': rows})}")
    return 0


def fidelity(rows: List[Dict[str, Any]], args: argparse.Namespace) -> None:
    """COCO AP of each row and its mean OKS agreement with the first (ONNX Runtime FP32)."""
    import cv2

    from edge.coco import coco_keypoint_scores, load_coco_keypoints
    from edge.decode.agreement import agreement
    from edge.pipeline import PoseEstimator

    coco = load_coco_keypoints(args.annotations)
    images = [im for im in coco["images"] if os.path.exists(os.path.join(args.images, im["file_name"]))]
    reference: List[Any] = []
    for row in rows:
        options = {"ov_precision": row["ov"]}
        results, poses = [], []
        with PoseEstimator(row["model"], device="cpu", threads=args.threads, backend=row["backend"],
                           backend_options=options) as estimator:  # fmt: skip
            for im in images:
                found = estimator(cv2.imread(os.path.join(args.images, im["file_name"])))
                poses.append(found)
                results += found.to_coco_results(im["id"])
        row["coco"] = coco_keypoint_scores(coco, results, [im["id"] for im in images])
        if not reference:
            reference = poses
        row["agreement_with_ort_fp32"] = agreement(zip(reference, poses))
        oks = row["agreement_with_ort_fp32"]["mean_oks"]
        print(f"{row['label']:<24} AP {row['coco']['AP']:.3f}, mean OKS vs ORT fp32 "
              f"{'n/a' if oks is None else f'{oks:.3f}'}", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
