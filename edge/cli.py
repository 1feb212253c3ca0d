"""`bkpose-run SOURCE --model PATH`: poses from a camera, video, stream or images.

    bkpose-run video.mp4 --model engines/bkpose.fp32.onnx --jsonl out.jsonl --video out.mp4
    bkpose-run 0 --model engines/bkpose.fp16.engine --show          # USB camera, live FPS line
    bkpose-run photos/ --model m.onnx --coco results.json            # image set, COCO results

Files get a progress bar (their length is known), cameras a live FPS line. Exit codes: 0 done,
2 bad arguments, model, source or output, 1 a failure while running, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, List, Optional, Sequence

from edge.errors import BKPoseError


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bkpose-run", description="Multi-person pose estimation with BK-Pose.")
    p.add_argument(
        "source",
        help="video, image(s), camera index, /dev/videoN, csi://N, rtsp://... or a GStreamer pipeline",
    )
    p.add_argument("--model", required=True, help=".onnx (ONNX Runtime) or .engine (TensorRT)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime CPU threads (0: its default)")
    p.add_argument("--jsonl", help="write one JSON line per frame here")
    p.add_argument("--video", help="write the annotated frames to this video file")
    p.add_argument("--coco", help="write COCO keypoint results JSON (image sets)")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window")
    p.add_argument("--policy", choices=("latest", "all"), help="drop stale frames (latest) or none (all); "
                                                              "default: latest for live sources")  # fmt: skip
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--width", type=int, default=1280, help="CSI camera width")
    p.add_argument("--height", type=int, default=720, help="CSI camera height")
    p.add_argument("--fps", type=int, default=30, help="CSI camera frame rate")
    p.add_argument("--fsync", action="store_true", help="fsync the JSON Lines file after every frame")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from edge.pipeline import PoseEstimator
    from edge.sinks import CocoSink, JsonlSink, VideoSink, draw_poses
    from edge.sources import open_source

    source = open_source(args.source, args.width, args.height, args.fps)
    sinks: List[Any] = []
    estimator = PoseEstimator(args.model, device=args.device, threads=args.threads)
    try:
        warm = estimator.warmup()
        where = "GPU" if estimator.backend.on_gpu else "CPU"
        print(f"bkpose-run: {args.model} on {estimator.backend.name} ({where}), {estimator.info.precision}; "
              f"warm-up {sum(warm.values()):.2f} s", file=sys.stderr)  # fmt: skip
        if args.jsonl:
            sinks.append(JsonlSink(args.jsonl, durable=args.fsync))
        if args.video:
            sinks.append(VideoSink(args.video, getattr(source, "fps", 30.0)))
        if args.coco:
            sinks.append(CocoSink(args.coco))
        total = (
            source.length
            if args.max_frames is None or source.length is None
            else min(source.length, args.max_frames)
        )
        progress = _progress(total, source.live)
        started, count, people = time.perf_counter(), 0, 0
        for result in estimator.stream(source, policy=args.policy):
            for sink in sinks:
                sink.write(result)
            if args.show and result.image is not None:
                import cv2

                cv2.imshow("bkpose", draw_poses(result.image, result))
                if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                    break
            count += 1
            people += len(result.poses)
            progress.update(count, people, result.counters, time.perf_counter() - started)
            if args.max_frames is not None and count >= args.max_frames:
                break
        progress.close()
        seconds = time.perf_counter() - started
        counters = result.counters if count else {}
        print(f"bkpose-run: {count} frames in {seconds:.2f} s ({count / max(seconds, 1e-9):.1f} FPS), "
              f"{people} people; {counters}", file=sys.stderr)  # fmt: skip
    finally:
        for sink in sinks:
            sink.close()
        estimator.close()
    return 0


class _progress:
    """tqdm bar for sources of known length, a live FPS line on stderr for cameras."""

    def __init__(self, total: Optional[int], live: bool) -> None:
        self.bar = None
        self.live = live
        self.last = 0.0
        if not live:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)

    def update(self, count: int, people: int, counters: dict, seconds: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(people=people, skipped=counters.get("skipped", 0), refresh=False)
        elif seconds - self.last >= 1.0:
            self.last = seconds
            print(f"\r{count / seconds:6.1f} FPS  frames {count}  dropped {counters.get('dropped', 0)}  "
                  f"reopens {counters.get('reopens', 0)}", end="", file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.live:
            print(file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="bkpose-run: %(message)s")
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\nbkpose-run: interrupted", file=sys.stderr)
        return 130
    except BKPoseError as err:
        print(f"bkpose-run: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a failure in a stage: say what, not a traceback wall
        print(f"bkpose-run: failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
