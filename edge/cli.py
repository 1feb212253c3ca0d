"""`bkpose-run SOURCE [--model PATH]`: poses from a camera, video, stream or images.

    bkpose-run video.mp4 --jsonl out.jsonl --video out.mp4           # the default (shipped) model
    bkpose-run video.mp4 --model engines/bkpose.fp32.onnx --jsonl out.jsonl
    bkpose-run 0 --model engines/bkpose.fp16.engine --show          # USB camera, live FPS line
    bkpose-run photos/ --model m.onnx --coco results.json            # image set, COCO results

Files get a progress bar (their length is known), cameras a live FPS line. Every output path is
checked before the model loads. SIGINT or SIGTERM stops capture, lets the frames in flight finish,
finalises the video and the results, and exits 130 or 143; a second signal interrupts at once.
Exit codes: 0 done, 2 bad arguments, model, source or output, 1 a failure while running, 128 + N
stopped by signal N. URL credentials are masked in everything printed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from edge.argtypes import at_least
from edge.backends.choice import add_backend_options, backend_choice
from edge.errors import BKPoseError
from edge.redact import redact
from edge.signals import StopSignals


def on_off(p: argparse.ArgumentParser, name: str, default: Optional[bool], help: str) -> None:
    """--NAME / --no-NAME (argparse.BooleanOptionalAction is Python 3.9+)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=name, action="store_true", help=help)
    group.add_argument(f"--no-{name}", dest=name, action="store_false", help=argparse.SUPPRESS)
    p.set_defaults(**{name: default})


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bkpose-run", description="Multi-person pose estimation with BK-Pose.")
    p.add_argument(
        "source", nargs="*",
        help="video, image(s), camera index, /dev/videoN, csi://N, rtsp://... or a GStreamer pipeline; "
        "several run in one process (one capture thread each, batched inference)",
    )  # fmt: skip
    p.add_argument("--sources", metavar="FILE", help='several sources from a JSON (or YAML) list of '
                   '{"uri": ..., "name": ...}')  # fmt: skip
    p.add_argument("--batch", default="auto", help="frames per inference call with several sources: N, or "
                   "auto (measured at start: 1 where batching does not pay, as on a CPU)")  # fmt: skip
    p.add_argument(
        "--model",
        help=".onnx (ONNX Runtime) or .engine (TensorRT); default: the shipped trained weights, "
        "exported to engines/ on first use (edge.default_model)",
    )
    add_backend_options(p)
    p.add_argument("--jsonl", help="write one JSON line per frame here")
    p.add_argument("--video", help="write the annotated frames to this video file")
    p.add_argument("--coco", help="write COCO keypoint results JSON (image sets)")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window")
    p.add_argument("--policy", choices=("latest", "all"), help="drop stale frames (latest) or none (all); "
                                                              "default: latest for live sources")  # fmt: skip
    p.add_argument("--max-frames", type=at_least(1), default=None, help="stop after N frames")
    p.add_argument(
        "--wait",
        action="store_true",
        help="a camera or stream that cannot be opened yet is retried with back-off (0.5 s doubling "
        "to 8 s) until it appears, instead of exiting",
    )
    p.add_argument("--width", type=at_least(1), default=1280, help="CSI camera width")
    p.add_argument("--height", type=at_least(1), default=720, help="CSI camera height")
    p.add_argument("--fps", type=at_least(1), default=30, help="CSI camera frame rate")
    p.add_argument("--fsync", action="store_true", help="fsync the JSON Lines file after every frame")
    from edge.mqtt import add_mqtt_options

    add_mqtt_options(p)
    from edge.metrics import add_metrics_options

    add_metrics_options(p)
    on_off(p, "track", None, "give people IDs that last across frames (--no-track: off; default: "
           "on for videos, cameras and streams, off for images)")  # fmt: skip
    on_off(p, "smooth", True, "One-Euro smoothing of tracked people's keypoints (--no-smooth: off; "
           "default on; COCO results stay raw)")  # fmt: skip
    args = p.parse_args(argv)
    if bool(args.source) == bool(args.sources):
        p.error("give the sources on the command line or with --sources FILE (one of the two)")
    if args.batch != "auto" and not (args.batch.isdigit() and int(args.batch) >= 1):
        p.error(f"--batch must be auto or a whole number >= 1, found {args.batch!r}")
    if args.coco and (len(args.source) > 1 or args.sources):
        p.error("--coco takes one image set; with several sources write --jsonl (each line has its stream)")
    if args.show:
        from edge.sinks import gui_available

        if not gui_available():
            p.error(
                "--show needs OpenCV with a GUI, and this one is headless (opencv-python-headless); "
                "install a GUI build (pip install opencv-python, or apt's python3-opencv on Jetson) "
                "or write --video instead"
            )
    return args


def make_sinks(args: argparse.Namespace, sources: Dict[str, Any]) -> List[Any]:
    """Every requested output, its path checked now: before a model loads or a frame runs. With
    several sources, one annotated video per stream (`out-<stream>.mp4`)."""
    from edge.sinks import CocoSink, JsonlSink, PerStreamSink, VideoSink, check_output, per_stream_path

    sinks: List[Any] = []
    if args.jsonl:
        sinks.append(JsonlSink(args.jsonl, durable=args.fsync))
    if args.video and len(sources) == 1:
        sinks.append(VideoSink(args.video, next(iter(sources.values())).fps))
    elif args.video:
        for name in sources:
            check_output(per_stream_path(args.video, name), "video")
        sinks.append(
            PerStreamSink(lambda name: VideoSink(per_stream_path(args.video, name), sources[name].fps))
        )
    if args.coco:
        sinks.append(CocoSink(args.coco))
    if args.mqtt:
        from edge.mqtt import sink_from_args

        sinks.append(sink_from_args(args, stream=next(iter(sources))))
    if args.metrics_port is not None:
        from edge.metrics import sink_from_args as metrics_sink

        sinks.append(metrics_sink(args, queues=[s.outbox for s in sinks if hasattr(s, "outbox")]))
    return sinks


def run(args: argparse.Namespace) -> int:
    from edge.pipeline import PoseEstimator
    from edge.sinks import draw_poses
    from edge.sources import named_sources, open_source, read_sources_file, stream_name

    # the sources first (a camera is not opened until streaming starts), then the outputs' paths
    entries = (
        read_sources_file(args.sources)
        if args.sources
        else [{"uri": u, "name": stream_name(u)} for u in args.source]
    )
    sources = {name: open_source(uri, args.width, args.height, args.fps, wait=args.wait)
               for name, uri in named_sources(entries)}  # fmt: skip
    source = next(iter(sources.values()))
    sinks = make_sinks(args, sources)
    if args.model is None:
        from edge.default_model import default_onnx

        args.model = default_onnx(lambda line: print(f"bkpose-run: {line}", file=sys.stderr, flush=True))
    with contextlib.ExitStack() as outputs:  # every output is finalised, however the run ends
        stop = outputs.enter_context(
            StopSignals(lambda: [s.close() for s in sources.values()])
        )  # covers closing
        for sink in sinks:
            outputs.enter_context(sink)
        estimator = outputs.enter_context(PoseEstimator(args.model, **backend_choice(args)))
        for sink in sinks:
            if hasattr(sink, "describe_model"):
                sink.describe_model(args.model, estimator)
        warm = estimator.warmup()
        where = "GPU" if estimator.backend.on_gpu else "CPU"
        precision, warm_s = estimator.info.precision, sum(warm.values())
        print(f"bkpose-run: {args.model} on {estimator.backend.name} ({where}), {precision}; "
              f"warm-up {warm_s:.2f} s", file=sys.stderr)  # fmt: skip
        lengths = [src.length for src in sources.values()]
        total = None if None in lengths else sum(lengths)  # type: ignore[arg-type]
        if args.max_frames is not None and total is not None:
            total = min(total, args.max_frames)
        progress = _progress(total, any(src.live for src in sources.values()))
        started, people, count = time.perf_counter(), 0, 0
        counters: Dict[str, int] = {}
        if len(sources) == 1:
            results = estimator.stream(source, policy=args.policy, stages=result_stages(args, source))
        else:
            batch = estimator.choose_batch(len(sources)) if args.batch == "auto" else int(args.batch)
            print(
                f"bkpose-run: {len(sources)} streams ({', '.join(sources)}), batch {batch}", file=sys.stderr
            )
            per_stream = lambda name: result_stages(args, sources[name])  # noqa: E731
            results = estimator.stream_many(sources, policy=args.policy, batch=batch, stages=per_stream)
        for result in results:
            for sink in sinks:
                sink.write(result)
            if args.show and result.image is not None:
                import cv2

                cv2.imshow("bkpose", draw_poses(result.image, result))
                if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                    break
            count += 1
            people += len(result.poses)
            counters = result.counters
            progress.update(count, people, counters, time.perf_counter() - started)
            if args.max_frames is not None and count >= args.max_frames:
                break
        progress.close()
        seconds = time.perf_counter() - started
    fps = count / max(seconds, 1e-9)
    summary = f"{count} frames in {seconds:.2f} s ({fps:.1f} FPS), {people} people; {counters}"
    if stop.received is not None:
        print(f"bkpose-run: stopped by {stop.name} after {summary}; outputs written", file=sys.stderr)
        return stop.exit_code
    print(f"bkpose-run: {summary}", file=sys.stderr)
    return 0


def result_stages(args: argparse.Namespace, source: Any) -> List[Any]:
    """The per-stream stages after decoding: the tracker, unless turned off or an image set."""
    from edge.sources import ImageSource
    from edge.tracking import PoseTracker, TrackerParams

    track = args.track if args.track is not None else not isinstance(source, ImageSource)
    if not track:
        return []
    if source.live or not source.fps:
        return [PoseTracker(TrackerParams(smooth=args.smooth))]
    fps = source.fps  # a file: its own timeline, however fast it is read
    return [PoseTracker(TrackerParams(smooth=args.smooth), time_of=lambda result: result.index / fps)]


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
    from edge.sources import quiet_ffmpeg

    quiet_ffmpeg()
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\nbkpose-run: interrupted", file=sys.stderr)
        return 130
    except BKPoseError as err:
        print(f"bkpose-run: error: {redact(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # a failure in a stage: say what, not a traceback wall
        print(f"bkpose-run: failed: {type(err).__name__}: {redact(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
