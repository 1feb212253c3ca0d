"""`bkpose-bench`: end-to-end FPS and per-stage latency percentiles, stamped with the device state.

    bkpose-bench                         # embedded default: CPU, random-init ONNX, generated frames
    bkpose-bench --model engines/bk.fp16.engine --source video.mp4 --mode pipelined --duration 30
    bkpose-bench --model engines/bk.fp32.onnx --precision fp32,int8   # sweep the variants found
    bkpose-bench --accuracy --annotations person_keypoints.json --images photos/ --max-ap-drop 0.01
    bkpose-bench --compare a.json b.json

This file is the command line; the parts are bench_models (which model), bench_runs (the
measured loops), bench_report (table, stamp, --compare) and bench_accuracy. What each stage
includes is `edge.stages.MEANING` (listed by --help, written to the JSON's `includes`). One-off
costs (model load, Numba compile, first inference) are reported apart and never enter the
percentiles; warm-up frames are not measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, Optional, Sequence

from benchmarks.bench_accuracy import accuracy
from benchmarks.bench_models import default_model, variants, with_ov_precision
from benchmarks.bench_report import compare, print_run, print_stamp
from benchmarks.bench_runs import bench_model
from benchmarks.bench_streams import print_streams, run_streams
from benchmarks.common import RESULTS_DIR, UsageError, write_json
from benchmarks.device_stamp import device_stamp, finish_stamp
from edge import stages
from edge.argtypes import above, at_least
from edge.backends.choice import add_backend_options
from edge.errors import BKPoseError
from edge.redact import redact
from edge.signals import StopSignals
from edge.sources import quiet_ffmpeg

FORMAT = "bkpose-bench"
VERSION = 1
SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas", "bench_result.json")
INCLUDES = stages.MEANING


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bkpose-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="stages (ms):\n" + "\n".join(f"  {name:<15}{meaning}" for name, meaning in INCLUDES.items()),
    )  # fmt: skip
    # fmt: off
    p.add_argument("--model", "--engine", dest="model",
                   help=".onnx or .engine (default: a fitting engine in engines/, else the random-init ONNX)")
    p.add_argument("--source", help="video, image folder/glob, camera, csi://N, rtsp://..., synthetic:WxH "
                                    "(default: generated 1280x720 frames)")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--frames", type=at_least(1, int), default=200, help="measured frames (default 200)")
    amount.add_argument("--duration", type=above(0.0), help="measure for S seconds instead")
    p.add_argument("--warmup", type=at_least(0.0, float), default=1.0,
                   help="seconds of unmeasured frames first (default 1)")
    p.add_argument("--mode", choices=("sequential", "pipelined"), default="pipelined")
    p.add_argument("--streams", type=at_least(1, int), default=1,
                   help="N copies of the source as N streams in one process (batched)")  # fmt: skip
    p.add_argument("--batch", default="auto", help="--streams: frames per inference call, N or auto")
    p.add_argument("--precision", help="comma list: sweep the variants next to --model (e.g. fp32,fp16,int8; "
                                       "bf16: the FP32 file computed in bf16 by OpenVINO)")  # fmt: skip
    add_backend_options(p)
    p.add_argument("--json", default=str(RESULTS_DIR / "bench.json"), help="where to write the JSON result")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="print two results side by side")
    p.add_argument("--accuracy", action="store_true", help="COCO keypoint AP per precision")
    p.add_argument("--annotations", help="COCO person keypoints JSON")
    p.add_argument("--images", help="folder with the annotated images")
    p.add_argument("--max-ap-drop", type=float, help="--accuracy: exit 1 past this AP loss")
    # fmt: on
    args = p.parse_args(argv)
    if args.accuracy and not (args.annotations and args.images):
        p.error("--accuracy needs --annotations FILE and --images DIR")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    quiet_ffmpeg()
    try:
        return run(args, argv)
    except KeyboardInterrupt:
        print("bkpose-bench: interrupted", file=sys.stderr)
        return 130
    except (UsageError, BKPoseError) as err:
        print(f"bkpose-bench: error: {redact(err)}", file=sys.stderr)
        return 2


def check_inputs(args: argparse.Namespace) -> None:
    """Every file the run reads or writes, checked before any model loads."""
    from edge.files import check_writable

    for path in args.compare or []:
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such result file")
    if args.model and not os.path.isfile(args.model):
        raise UsageError(f"{args.model}: no such model file")
    if args.accuracy and not os.path.isfile(args.annotations):
        raise UsageError(f"{args.annotations}: no such annotation file")
    if not args.compare:
        try:  # the folder is made as writing would make it (results/ on a fresh clone)
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            check_writable(args.json)
        except OSError as err:
            raise UsageError(f"{args.json}: cannot write the JSON result ({err.strerror or err})") from None


def run(args: argparse.Namespace, argv: Optional[Sequence[str]]) -> int:
    check_inputs(args)
    if args.compare:
        return compare(args.compare)
    stamp = device_stamp()
    model = args.model or default_model()
    print(f"bkpose-bench: model {model}" + ("" if args.model else " (picked automatically)"))
    models = variants(model, args.precision, args.backend)
    if not models:
        raise UsageError("no model variant to run")
    command = ["bkpose-bench", *(redact(a) for a in (sys.argv[1:] if argv is None else argv))]
    payload: Dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "includes": INCLUDES, "runs": [],
    }  # fmt: skip
    exit_code = 0
    with StopSignals(lambda: None) as stop:
        if args.accuracy:
            payload["accuracy"] = accuracy(models, args)
            if args.max_ap_drop is not None:
                worst = max(e["ap_drop"] for e in payload["accuracy"]["by_precision"].values())
                if worst > args.max_ap_drop:
                    print(f"bkpose-bench: FAIL: AP drop {worst:.3f} > {args.max_ap_drop}", file=sys.stderr)
                    exit_code = 1
        else:
            for entry in models:
                measure = run_streams if args.streams > 1 else None
                run = bench_model(entry.path, with_ov_precision(args, entry), stop, measure)
                payload["runs"].append(run)
                print_run(run)
                if "streams" in run:
                    print_streams(run["streams"])
                if stop.received is not None:
                    break
    payload["device"] = finish_stamp(stamp)
    print()
    print_stamp(payload["device"])
    print(f"JSON          {write_json(args.json, payload)}")
    if stop.received is not None:
        print(f"bkpose-bench: stopped by {stop.name}; the frames measured so far are reported",
              file=sys.stderr)  # fmt: skip
        return stop.exit_code
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
