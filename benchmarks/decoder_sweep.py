"""Which decoder constants suit a model: COCO AP and decode time for each candidate peak threshold
and minimum keypoint count, on the same heatmaps (the model runs once per photo), plus decode time
on the bench's generated frames.

A weakly trained model leaves many faint peaks just over the reference threshold (0.1), and the
grouping scores every pair of them: decode time grows with the square of their number while those
peaks rarely make a person. It also assembles many fragments of a few keypoints that match nobody
in the ground truth: phantom people that a camera appliance would report and a tracker would
follow. The sweep first takes the highest peak threshold, then at that threshold the highest
`min_parts`, that keep at least `--keep` of the AP of the reference constants (peak threshold 0.1,
2 keypoints), so both together lose at most that share; ship them with
`python -m train.ship --peak-threshold T --min-parts N`.

    python -m benchmarks.decoder_sweep [--model engines/m.fp32.onnx] [--annotations A.json
        --images DIR] [--thresholds 0.1,0.15,0.2,0.25,0.3] [--min-parts 2,3,4,6,8] [--limit N]
        [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks.common import (
    DEV538_ANNOTATIONS,
    DEV538_IMAGES,
    RESULTS_DIR,
    environment,
    time_stats,
    write_json,
)
from edge.decode import Decoder, DecoderParams
from edge.geometry import Letterbox

REFERENCE = DecoderParams().peak_threshold
REFERENCE_MIN_PARTS = DecoderParams().min_parts
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


def recommend(
    rows: List[Dict[str, Any]], keep: float, key: str = "peak_threshold", base: Optional[float] = None
):
    """The highest `key` whose AP is at least `keep` times `base` (default: the AP of the row at
    the reference peak threshold); None when there is nothing to compare with."""
    if base is None:
        base = next((r["AP"] for r in rows if r.get("peak_threshold") == REFERENCE), None)
    if base is None:
        return None
    fine = [r[key] for r in rows if r["AP"] >= keep * base]
    return max(fine) if fine else None


class Sweep:
    """The dev538 photos' and the generated frames' maps, decoded and scored under any constants."""

    def __init__(self, backend: Any, coco: Dict[str, Any], images: List[dict], image_dir: str) -> None:
        import cv2

        from edge.sources import SyntheticSource

        self.info, self.coco, self.images = backend.info, coco, images
        self.photos = model_maps(
            backend, (cv2.imread(os.path.join(image_dir, im["file_name"])) for im in images)
        )
        self.generated = model_maps(backend, SyntheticSource(count=8).images)

    def row(self, **constants: Any) -> Dict[str, Any]:
        from edge.coco import coco_keypoint_scores

        params = {**self.info.decoder, **constants}
        decoder = Decoder(self.info.layout, **params)
        stride = self.info.layout.stride
        decoder.warmup(self.info.input_height // stride, self.info.input_width // stride)
        poses, times = decode_all(decoder, self.photos)
        results = [r for im, p in zip(self.images, poses) for r in p.to_coco_results(im["id"])]
        scores = coco_keypoint_scores(self.coco, results, [im["id"] for im in self.images])
        _, generated_times = decode_all(decoder, self.generated)
        row = {
            "peak_threshold": decoder.params.peak_threshold,
            "min_parts": decoder.params.min_parts,
            "AP": scores["AP"], "AP50": scores["AP50"], "AR": scores["AR"],
            "people": len(results),
            "decode_ms": time_stats(times),
            "generated_decode_ms": time_stats(generated_times),
        }  # fmt: skip
        d, g = row["decode_ms"], row["generated_decode_ms"]
        print(
            f"{row['peak_threshold']:>9.3f}{row['min_parts']:>6}{scores['AP']:>8.4f}{scores['AR']:>8.4f}"
            f"{len(results):>8}{d['mean']:>10.2f}{d['p99']:>9.1f}{g['mean']:>11.2f}",
            flush=True,
        )
        return row


def sweep(
    backend: Any,
    coco: Dict[str, Any],
    images: List[dict],
    image_dir: str,
    thresholds: Sequence[float],
    min_parts: Sequence[int] = (),
    keep: float = 0.98,
) -> Dict[str, Any]:
    """Rows per peak threshold, then per minimum keypoint count at the recommended threshold, and
    the recommendation of each; the base is the reference constants' AP (the first row)."""
    runs = Sweep(backend, coco, images, image_dir)
    print(f"{'threshold':>9}{'parts':>6}{'AP':>8}{'AR':>8}{'people':>8}{'decode ms':>10}{'p99 ms':>9}"
          f"{'generated':>11}")  # fmt: skip
    rows = [runs.row(peak_threshold=t, min_parts=REFERENCE_MIN_PARTS) for t in thresholds]
    base = next(r["AP"] for r in rows if r["peak_threshold"] == REFERENCE)
    threshold = recommend(rows, keep, base=base)
    parts_rows = [
        runs.row(peak_threshold=threshold or REFERENCE, min_parts=n) for n in min_parts
    ]  # fmt: skip
    parts = recommend(parts_rows, keep, key="min_parts", base=base) if parts_rows else None
    return {
        "rows": rows,
        "min_parts_rows": parts_rows,
        "reference_AP": base,
        "recommended_peak_threshold": threshold,
        "recommended_min_parts": parts,
    }


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.decoder_sweep", description=__doc__.split("\n")[0])
    p.add_argument("--model", help="an ONNX model (default: the default model, exported if needed)")
    p.add_argument("--annotations", default=str(DEV538_ANNOTATIONS))
    p.add_argument("--images", default=str(DEV538_IMAGES))
    p.add_argument("--thresholds", default="0.1,0.15,0.2,0.25,0.3", help="comma-separated peak thresholds")
    p.add_argument(
        "--min-parts", default="2,3,4,6,8", help="comma-separated minimum keypoints per person ('' to skip)"
    )
    p.add_argument("--limit", type=int, default=0, help="only the first N annotated photos (0: all)")
    p.add_argument("--keep", type=float, default=0.98, help="AP to keep against the reference threshold")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default=str(RESULTS_DIR / "decoder_sweep.json"))
    args = p.parse_args(argv)
    try:
        thresholds = sorted({float(t) for t in args.thresholds.split(",")} | {REFERENCE})
        parts = sorted({int(n) for n in args.min_parts.split(",") if n.strip()} | {REFERENCE_MIN_PARTS})
    except ValueError:
        p.error(f"--thresholds and --min-parts take numbers separated by commas ({args.thresholds!r}, "
                f"{args.min_parts!r})")  # fmt: skip
    if not args.min_parts.strip():
        parts = []
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
        found = sweep(backend, coco, images, args.images, thresholds, parts, args.keep)
        info = backend.info
    finally:
        backend.close()
    threshold, min_parts = found["recommended_peak_threshold"], found["recommended_min_parts"]
    print(f"recommended peak threshold: {threshold}, then minimum keypoints: {min_parts} "
          f"(the highest keeping {args.keep:.0%} of AP {found['reference_AP']:.4f} at the reference "
          f"constants, threshold {REFERENCE} and {REFERENCE_MIN_PARTS} keypoints)")  # fmt: skip
    report = {
        "benchmark": "decoder_sweep",
        "model": model,
        "input_size": info.input_width,
        "model_decoder": info.decoder,
        "photos": len(images),
        "annotations": args.annotations,
        "keep": args.keep,
        **found,
        "environment": environment(),
    }
    print(f"JSON: {write_json(args.json, report)}")
    return report


if __name__ == "__main__":
    main()
