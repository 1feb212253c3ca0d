"""Does pipelining pay? Throughput of `PoseEstimator.stream` against the same frames run one by one.

Sequential: preprocess, infer, decode one frame after another (the sum of the stages).
Pipelined: the same work with capture, inference (preprocess + infer) and decoding in three
threads; its throughput should approach 1 / (slowest stage). Both passes are bkpose-bench's own
measurement loops (`benchmarks.bench_runs`), run on the same frames. Frames come from a video, or from a
generated 640x480 clip held in memory (the default, so the source costs nothing); the model
defaults to the random-init ONNX that `bkpose-export --random-init --out engines/` writes.

    python -m benchmarks.pipeline [--model PATH] [--video PATH] [--frames N] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List, Optional

import numpy as np

from benchmarks import bench_runs
from benchmarks.common import RESULTS_DIR, environment, write_json
from edge.pipeline import PoseEstimator


def synthetic_clip(count: int, width: int = 640, height: int = 480) -> List[np.ndarray]:
    base = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, 4 * i, axis=1) for i in range(count)]


def load_clip(path: str, count: int) -> List[np.ndarray]:
    """`count` frames of a video, looping short clips."""
    import cv2

    capture = cv2.VideoCapture(path)
    frames: List[np.ndarray] = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            if not frames:
                raise SystemExit(f"{path}: no frames")
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        frames.append(frame)
    return frames


def measure(estimator: PoseEstimator, frames: List[np.ndarray], mode: str) -> Dict[str, Any]:
    """One pass over `frames` with bkpose-bench's own sequential or pipelined loop."""
    budget = bench_runs.Budget(len(frames), None)
    if mode == "sequential":
        raw = bench_runs.run_sequential(estimator, iter(frames), budget, 0.0)
    else:
        raw = bench_runs.run_pipelined(estimator, iter(frames), budget, 0.0, live=False)
    stages = bench_runs.summarise(raw["samples"])
    result = {"fps": raw["frames"] / raw["seconds"], "frames": raw["frames"], "stages": stages}
    if mode == "pipelined":
        result["bound_fps"] = bench_runs.pipelined_bound(stages)
        result["fraction_of_bound"] = result["fps"] / result["bound_fps"]
    return result


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join("engines", "bkpose-random-s0.fp32.onnx"))
    p.add_argument("--video", help="video file (default: a generated clip in memory)")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime CPU threads (0: its default)")
    p.add_argument("--json", default=str(RESULTS_DIR / "pipeline.json"))
    args = p.parse_args(argv)
    frames = load_clip(args.video, args.frames) if args.video else synthetic_clip(args.frames)
    with PoseEstimator(args.model, device="auto", threads=args.threads) as estimator:
        warm = estimator.warmup()
        sequential = measure(estimator, frames, "sequential")
        pipelined = measure(estimator, frames, "pipelined")
        backend = f"{estimator.backend.name} {estimator.info.precision}"
    h, w = frames[0].shape[:2]
    print(f"{len(frames)} frames {w}x{h}, {backend}; median ms per stage")
    print(f"{'mode':<11} {'FPS':>7} {'preproc':>8} {'infer':>8} {'peaks':>8} {'grouping':>8}")
    for name, run in (("sequential", sequential), ("pipelined", pipelined)):
        medians = " ".join(
            f"{run['stages'][k]['median']:>8.2f}" for k in ("preprocess", "infer", "peaks", "grouping")
        )
        print(f"{name:<11} {run['fps']:>7.1f} {medians}")
    ratio = pipelined["fps"] / sequential["fps"]
    print(f"pipelined / sequential: {ratio:.2f}x; pipelined reaches {pipelined['fraction_of_bound']:.0%} "
          f"of 1/slowest stage ({pipelined['bound_fps']:.1f} FPS)")  # fmt: skip
    payload = {
        "benchmark": "pipeline", "environment": environment(), "frames": len(frames), "size": [w, h],
        "model": args.model, "warmup_s": warm, "sequential": sequential, "pipelined": pipelined,
    }  # fmt: skip
    print(f"JSON: {write_json(args.json, payload)}")
    return payload


if __name__ == "__main__":
    main()
