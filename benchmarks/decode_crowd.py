"""Decode time versus the number of people in frame (1, 5, 10, 20, 40, 80).

Frames are built from real annotated people: each is cut out of its COCO image (its labelled
keypoints, at least 12), scaled into one cell of a grid covering the 512x512 input, and the oracle
heatmaps of the whole grid are rendered with `edge.targets`. Times are per frame after a warm-up,
for the single-threaded decoder and for the Numba `parallel=True` build.

    python -m benchmarks.decode_crowd [--annotations FILE] [--frames N] [--json OUT]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import List

import numba
import numpy as np

from benchmarks.common import RESULTS_DIR, default_people_annotations, environment, time_stats, write_json
from edge.coco import AnnotationError, load_coco_keypoints
from edge.decode import Decoder
from edge.geometry import letterbox
from edge.targets import coco_to_layout_keypoints, render_heatmaps

BUCKETS = (1, 5, 10, 20, 40, 80)
INPUT = 512
MIN_KEYPOINTS = 12


def people_pool(coco: dict) -> List[np.ndarray]:
    """COCO-17 keypoints [17, 3] of every non-crowd person with enough labelled keypoints."""
    pool = []
    for anns in coco["by_image"].values():
        for a in anns:
            if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) >= MIN_KEYPOINTS:
                pool.append(np.asarray(a["keypoints"], np.float64).reshape(17, 3))
    if not pool:
        raise SystemExit(f"no person with >= {MIN_KEYPOINTS} labelled keypoints in the annotations")
    return pool


def crowd_frame(pool: List[np.ndarray], count: int, rng: np.random.Generator) -> np.ndarray:
    """People [count, 18, 3] in input pixels, one per grid cell, each scaled to fill 80% of it."""
    cols = int(math.ceil(math.sqrt(count)))
    rows = int(math.ceil(count / cols))
    cell_w, cell_h = INPUT / cols, INPUT / rows
    placed = []
    for n, idx in enumerate(rng.choice(len(pool), size=count, replace=count > len(pool))):
        kps = pool[idx].copy()
        vis = kps[:, 2] > 0
        lo, hi = kps[vis, :2].min(axis=0), kps[vis, :2].max(axis=0)
        scale = 0.8 * min(cell_w / max(hi[0] - lo[0], 1.0), cell_h / max(hi[1] - lo[1], 1.0))
        origin = np.array([(n % cols + 0.1) * cell_w, (n // cols + 0.1) * cell_h])
        kps[vis, :2] = (kps[vis, :2] - lo) * scale + origin
        placed.append(kps)
    return coco_to_layout_keypoints(np.stack(placed))


def run_bucket(decoder: Decoder, pool, count: int, frames: int, rng) -> dict:
    lb = letterbox(INPUT, INPUT)
    times, found = [], []
    for _ in range(frames):
        maps = render_heatmaps(crowd_frame(pool, count, rng))
        start = time.perf_counter()
        poses = decoder.decode(maps, lb)
        times.append(time.perf_counter() - start)
        found.append(len(poses))
    return {
        "people": count,
        "frames": frames,
        "time_ms": time_stats(times),
        "found_mean": float(np.mean(found)),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--annotations",
        default=str(default_people_annotations()),
        help="COCO person-keypoints JSON (default: ../shared/data dev538, else the bundled 80 people)",
    )
    ap.add_argument("--frames", type=int, default=50, help="frames per bucket")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(RESULTS_DIR / "decode_crowd.json"), help="where to write the JSON")
    args = ap.parse_args(argv)

    try:
        pool = people_pool(load_coco_keypoints(args.annotations))
    except AnnotationError as err:
        raise SystemExit(str(err)) from None
    report = {
        "benchmark": "decode_crowd",
        "annotations": str(args.annotations),
        "environment": environment(),
        "pool": len(pool),
        "modes": {},
    }
    report["environment"]["numba_threads"] = numba.get_num_threads()
    print(f"{len(pool)} real people from {args.annotations}; {args.frames} frames per bucket")
    print(f"{'mode':<10}{'people':>7}{'found':>8}{'med ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for mode, parallel in (("serial", False), ("parallel", True)):
        decoder = Decoder(parallel=parallel)
        warm = decoder.warmup()
        rows = []
        for count in BUCKETS:
            r = run_bucket(decoder, pool, count, args.frames, np.random.default_rng(args.seed + count))
            t = r["time_ms"]
            print(
                f"{mode:<10}{count:>7}{r['found_mean']:8.1f}{t['median']:9.3f}{t['p90']:9.3f}{t['p99']:9.3f}{t['max']:9.3f}"
            )
            rows.append(r)
        report["modes"][mode] = {"warmup_s": warm, "buckets": rows}
    print(f"JSON: {write_json(args.json, report)}")
    return report


if __name__ == "__main__":
    main()
