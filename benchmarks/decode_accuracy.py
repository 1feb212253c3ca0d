"""Decoder accuracy and speed on real COCO poses: runtime decoder vs the Simple Pose reference.

For every image of a COCO keypoint file, oracle heatmaps are rendered from its annotations
(letterboxed to 512x512, `edge.targets`), decoded by both decoders and scored with pycocotools.
Degraded variants test robustness: `blur` (Gaussian, sigma 1.5 cells), `low` (maps scaled to
0.6 height), `noise` (additive, sigma 0.05), `false` (false keypoint peaks numbering 5% of the
labelled keypoints, at random places and types). Times are per frame, single thread, after a
warm-up; the reference's time includes its full-resolution upsampling, as it does in practice.
On `noise` the reference finds thousands of peaks per map and needs over a minute per frame, so
it runs only on the first `--reference-noise-frames` images there (the JSON says how many).

    python -m benchmarks.decode_accuracy [--annotations FILE] [--limit N] [--json OUT]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Callable, Dict, List

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.common import DEV538_ANNOTATIONS, RESULTS_DIR, environment, time_stats, write_json
from benchmarks.reference_decoder import reference_decode
from edge.coco import COCO_STAT_NAMES, AnnotationError, coco_keypoint_scores, load_coco_keypoints
from edge.decode import Decoder
from edge.geometry import letterbox
from edge.layout import BKPOSE_LAYOUT
from edge.targets import SIGMA_KEYPOINT, annotation_people, render_heatmaps, render_keypoint_map

DECODED = slice(0, BKPOSE_LAYOUT.num_decoded_channels)


def _blur(maps, people, rng):
    for c in range(DECODED.stop):
        maps[c] = cv2.GaussianBlur(maps[c], (0, 0), 1.5)
    return maps


def _low(maps, people, rng):
    maps[DECODED] *= 0.6
    return maps


def _noise(maps, people, rng):
    maps[DECODED] += rng.normal(0.0, 0.05, maps[DECODED].shape).astype(np.float32)
    return maps


def _false_peaks(maps, people, rng):
    lay = BKPOSE_LAYOUT
    labelled = int((people[:, :, 2] > 0).sum())
    count = max(1, int(math.ceil(0.05 * labelled)))
    size = maps.shape[1] * lay.stride
    for _ in range(count):
        k = int(rng.integers(lay.num_keypoints))
        point = rng.uniform(0, size - 1, size=(1, 2))
        render_keypoint_map(maps[lay.keypoint_start + k], point, lay.stride, SIGMA_KEYPOINT)
    return maps


VARIANTS: Dict[str, Callable] = {
    "clean": lambda maps, people, rng: maps,
    "blur": _blur,
    "low": _low,
    "noise": _noise,
    "false": _false_peaks,
}


def run_variant(
    name: str, coco: dict, images: List[dict], decoder: Decoder, reference_frames: int, seed: int
):
    """Decode every image with the runtime decoder and the first `reference_frames` with the reference."""
    rng = np.random.default_rng(seed)
    results = {"runtime": [], "reference": []}
    times = {"runtime": [], "reference": []}
    for n, im in enumerate(tqdm(images, desc=f"{name:>6}", leave=False)):
        lb = letterbox(im["width"], im["height"])
        people = annotation_people(coco["by_image"].get(im["id"], []), lb)
        maps = VARIANTS[name](render_heatmaps(people), people, rng)
        start = time.perf_counter()
        poses = decoder.decode(maps, lb)
        times["runtime"].append(time.perf_counter() - start)
        results["runtime"] += poses.to_coco_results(im["id"])
        if n < reference_frames:
            start = time.perf_counter()
            ref = reference_decode(maps, lb)
            times["reference"].append(time.perf_counter() - start)
            results["reference"] += ref.to_coco_results(im["id"])
    ids = [im["id"] for im in images]
    out = {}
    for which, count in (("runtime", len(images)), ("reference", min(reference_frames, len(images)))):
        if count == 0:
            continue
        out[which] = {
            "images": count,
            "coco": coco_keypoint_scores(coco, results[which], ids[:count]),
            "time_ms": time_stats(times[which]),
            "people": len(results[which]),
        }
    if "reference" in out:
        out["speedup_median"] = out["reference"]["time_ms"]["median"] / out["runtime"]["time_ms"]["median"]
    return out


def print_table(report: dict) -> None:
    head = f"{'variant':<8}{'decoder':<11}{'images':>7}" + "".join(f"{n:>7}" for n in COCO_STAT_NAMES)
    head += f"{'med ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'people':>8}"
    print(head)
    print("-" * len(head))
    for variant, res in report["variants"].items():
        for which in ("runtime", "reference"):
            if which not in res:
                continue
            r = res[which]
            row = f"{variant:<8}{which:<11}{r['images']:7d}" + "".join(
                f"{r['coco'][n]:7.3f}" for n in COCO_STAT_NAMES
            )
            t = r["time_ms"]
            print(row + f"{t['median']:10.3f}{t['p90']:10.3f}{t['p99']:10.3f}{r['people']:8d}")
        if "speedup_median" in res:
            print(f"{'':<8}speed-up of the runtime decoder (median): {res['speedup_median']:.0f}x")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--annotations", default=str(DEV538_ANNOTATIONS), help="COCO person-keypoints JSON")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {list(VARIANTS)}")
    ap.add_argument("--no-reference", action="store_true", help="skip the (slow) reference decoder")
    ap.add_argument("--reference-noise-frames", type=int, default=3, help="reference frames on 'noise'")
    ap.add_argument(
        "--refine", default="quadratic", help="runtime decoder refinement: quadratic, centroid, none"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--json", default=str(RESULTS_DIR / "decode_accuracy.json"), help="where to write the JSON"
    )
    args = ap.parse_args(argv)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    try:
        coco = load_coco_keypoints(args.annotations)
    except AnnotationError as err:
        raise SystemExit(str(err)) from None
    images = coco["images"][: args.limit] if args.limit > 0 else coco["images"]
    decoder = Decoder(refine=args.refine)
    warmup_s = decoder.warmup()
    report = {
        "benchmark": "decode_accuracy",
        "annotations": str(args.annotations),
        "images": len(images),
        "refine": args.refine,
        "warmup_s": warmup_s,
        "environment": environment(),
        "variants": {},
    }
    print(f"{len(images)} images from {args.annotations}; decoder warm-up {warmup_s:.3f} s")
    for i, name in enumerate(variants):
        reference_frames = 0 if args.no_reference else len(images)
        if name == "noise":
            reference_frames = min(reference_frames, args.reference_noise_frames)
        report["variants"][name] = run_variant(name, coco, images, decoder, reference_frames, args.seed + i)
    print_table(report)
    print(f"JSON: {write_json(args.json, report)}")
    return report


if __name__ == "__main__":
    main()
