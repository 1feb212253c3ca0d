"""Which peak threshold suits a model: COCO AP and decode time at each candidate threshold, on the
same heatmaps (the model runs once per photo), plus decode time on the bench's generated frames.

A weakly trained model leaves many faint peaks just over the reference threshold (0.1), and the
grouping scores every pair of them: decode time grows with the square of their number while those
peaks rarely make a person. The recommendation is the highest threshold that keeps at least
`--keep` of the reference threshold's AP; ship it with `python -m train.ship --peak-threshold`.

    python -m benchmarks.decoder_sweep [--model engines/m.fp32.onnx] [--annotations A.json
        --images DIR] [--thresholds 0.1,0.15,0.2,0.25,0.3] [--limit N] [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks.common import RESULTS_DIR, SHARED_DATA, environment, time_stats, write_json
from edge.decode import Decoder, DecoderParams
from edge.geometry import Letterbox

REFERENCE = DecoderParams().peak_threshold
Maps = List[Tuple[np.ndarray, Letterbox]]


def model_maps(backend: Any, frames: Iterable[np.ndarray]) -> Maps:
    """Heatmaps and letterbox of each frame. The maps stay float32 (about 100 MB for dev538 at
    384): stored as float16, they cost a young model 0.003 AP (measured on 120 dev538 photos)."""
    out = []
    for frame in frames:
        heatmaps, lb, _ = backend.run(frame)
        out.append((np.array(heatmaps, np.float32), lb))  # a copy: the backend may reuse its buffer
    return out


def decode_all(decoder: Decoder, maps: Maps) -> Tuple[list, List[float]]:
    poses, times = [], []
    for heatmaps, lb in maps:
        start = time.perf_counter()
        poses.append(decoder.decode(heatmaps, lb))
        times.append(time.perf_counter() - start)
    return poses, times


def recommend(rows: List[Dict[str, Any]], keep: float) -> Optional[float]:
    """The highest threshold whose AP is at least `keep` times the reference threshold's."""
    base = next((r["AP"] for r in rows if r["peak_threshold"] == REFERENCE), None)
    if base is None:
        return None
    fine = [r["peak_threshold"] for r in rows if r["AP"] >= keep * base]
    return max(fine) if fine else None


def sweep(
    backend: Any, coco: Dict[str, Any], images: List[dict], image_dir: str, thresholds: Sequence[float]
) -> List[Dict[str, Any]]:
    import cv2

    from edge.coco import coco_keypoint_scores
    from edge.sources import SyntheticSource

    photos = model_maps(backend, (cv2.imread(os.path.join(image_dir, im["file_name"])) for im in images))
    generated = model_maps(backend, SyntheticSource(count=8).images)
    ids = [im["id"] for im in images]
    stride = backend.info.layout.stride
    rows = []
    for threshold in thresholds:
        decoder = Decoder(backend.info.layout, **{**backend.info.decoder, "peak_threshold": threshold})
        decoder.warmup(backend.info.input_height // stride, backend.info.input_width // stride)
        poses, times = decode_all(decoder, photos)
        results = [r for im, p in zip(images, poses) for r in p.to_coco_results(im["id"])]
        scores = coco_keypoint_scores(coco, results, ids)
        _, generated_times = decode_all(decoder, generated)
        rows.append({
            "peak_threshold": threshold,
            "AP": scores["AP"], "AP50": scores["AP50"], "AR": scores["AR"],
            "people": len(results),
            "decode_ms": time_stats(times),
            "generated_decode_ms": time_stats(generated_times),
        })  # fmt: skip
        d, g = rows[-1]["decode_ms"], rows[-1]["generated_decode_ms"]
        print(
            f"{threshold:>9.3f}{scores['AP']:>8.4f}{scores['AR']:>8.4f}{len(results):>8}"
            f"{d['mean']:>10.2f}{d['p99']:>9.1f}{g['mean']:>11.2f}",
            flush=True,
        )
    return rows


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.decoder_sweep", description=__doc__.split("\n")[0])
    p.add_argument("--model", help="an ONNX model (default: the default model, exported if needed)")
    p.add_argument("--annotations", default=str(SHARED_DATA / "coco_val2017_person_keypoints_dev538.json"))
    p.add_argument("--images", default=str(SHARED_DATA / "images" / "coco_val2017_dev538"))
    p.add_argument("--thresholds", default="0.1,0.15,0.2,0.25,0.3", help="comma-separated peak thresholds")
    p.add_argument("--limit", type=int, default=0, help="only the first N annotated photos (0: all)")
    p.add_argument("--keep", type=float, default=0.98, help="AP to keep against the reference threshold")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default=str(RESULTS_DIR / "decoder_sweep.json"))
    args = p.parse_args(argv)
    try:
        thresholds = sorted({float(t) for t in args.thresholds.split(",")} | {REFERENCE})
    except ValueError:
        p.error(f"--thresholds takes numbers separated by commas, found {args.thresholds!r}")
    from edge.backends import open_backend
    from edge.coco import load_coco_keypoints
    from edge.default_model import default_onnx

    model = args.model or default_onnx(lambda line: print(line, file=sys.stderr))
    coco = load_coco_keypoints(args.annotations)
    images = [im for im in coco["images"] if os.path.exists(os.path.join(args.images, im["file_name"]))]
    images = images[: args.limit] if args.limit else images
    if not images:
        p.error(f"none of the annotated photos is under {args.images}")
    backend = open_backend(model, device="cpu", backend="ort", threads=args.threads)
    try:
        print(f"{model}: {len(images)} photos from {args.annotations}, input {backend.info.input_width}; "
              f"the model's own decoder constants: {backend.info.decoder or 'none'}")  # fmt: skip
        print(
            f"{'threshold':>9}{'AP':>8}{'AR':>8}{'people':>8}{'decode ms':>10}{'p99 ms':>9}{'generated':>11}"
        )
        rows = sweep(backend, coco, images, args.images, thresholds)
        info = backend.info
    finally:
        backend.close()
    best = recommend(rows, args.keep)
    print(f"recommended peak threshold: {best} (the highest keeping {args.keep:.0%} of AP at {REFERENCE})")
    report = {
        "benchmark": "decoder_sweep",
        "model": model,
        "input_size": info.input_width,
        "model_decoder": info.decoder,
        "photos": len(images),
        "annotations": args.annotations,
        "keep": args.keep,
        "recommended_peak_threshold": best,
        "rows": rows,
        "environment": environment(),
    }
    print(f"JSON: {write_json(args.json, report)}")
    return report


if __name__ == "__main__":
    main()
