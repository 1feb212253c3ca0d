"""`bkpose-bench`: end-to-end FPS and per-stage latency percentiles, stamped with the device state.

    bkpose-bench                         # embedded default: CPU, random-init ONNX, generated frames
    bkpose-bench --model engines/bk.fp16.engine --source video.mp4 --mode pipelined --duration 30
    bkpose-bench --model engines/bk.fp32.onnx --precision fp32,int8   # sweep the variants found
    bkpose-bench --accuracy --annotations person_keypoints.json --images photos/ --max-ap-drop 0.01
    bkpose-bench --compare a.json b.json

What each number includes (printed with the table, written in the JSON):
  read        taking the next frame from the source (decode for videos; ~0 for generated frames)
  preprocess  letterbox + normalise (CPU reference, or the CUDA kernel incl. frame upload on GPU)
  infer       host wall time of the model call (ONNX Runtime run, or TensorRT enqueue + copy back)
  *_gpu       CUDA-event times of upload / inference / download (TensorRT only)
  peaks       peak finding; grouping: limb scoring + person assembly (both at heatmap resolution)
  total       per frame from read start to decoded poses (sequential), or capture to result
              (pipelined: includes queueing)
One-off costs (model load, Numba compile, first inference) are reported apart and never enter
the percentiles; warm-up frames are not measured.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from benchmarks.common import RESULTS_DIR, time_stats, write_json
from benchmarks.device_stamp import device_stamp, finish_stamp
from edge import stages
from edge.argtypes import above, at_least
from edge.errors import BKPoseError
from edge.redact import redact
from edge.signals import StopSignals
from edge.sources import quiet_ffmpeg

FORMAT = "bkpose-bench"
VERSION = 1
SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas", "bench_result.json")
ENGINES = Path(os.environ.get("BKPOSE_ENGINES", "engines"))  # relative to the working directory
DEFAULT_ONNX = ENGINES / "bkpose-random-s0.fp32.onnx"
STAGES = stages.REPORTED  # the table's rows and --compare's, in order (edge/stages.py)
CROWD_BUCKETS = ((0, 0), (1, 2), (3, 5), (6, 10), (11, 20), (21, 10**6))
INCLUDES = stages.MEANING


# ---------------------------------------------------------------------------------------- model
def default_model(quiet: bool = False) -> str:
    """An engine in engines/ that fits this machine, else the random-init ONNX (made on first use)."""
    engines = sorted(glob.glob(str(ENGINES / "*.engine")))
    if engines:
        try:
            from edge.backends.sidecar import check_sidecar, read_sidecar
            from edge.backends.trt import require_tensorrt
            from edge.cuda.device import CudaDevice

            require_tensorrt()
            import tensorrt as trt

            device = CudaDevice(0)
            cc = "{}.{}".format(*device.compute_capability)
            for engine in engines:
                try:
                    check_sidecar(read_sidecar(engine), trt.__version__, device.name, cc, engine)
                    device.close()
                    return engine
                except Exception:
                    continue
            device.close()
        except Exception as err:
            if not quiet:
                print(
                    f"bkpose-bench: engines in {ENGINES} not usable here ({err}); using ONNX Runtime",
                    file=sys.stderr,
                )
    if not DEFAULT_ONNX.exists():
        try:
            from export import cli
        except ImportError:
            raise SystemExit(
                f"bkpose-bench: no model at {DEFAULT_ONNX}; make one with "
                "`bkpose-export --random-init --out engines/` (pip install 'bkpose[export]'), or pass --model"
            ) from None
        print(f"bkpose-bench: creating the untrained benchmark model {DEFAULT_ONNX} (once)", file=sys.stderr)
        cli.export_random(str(ENGINES), seed=0)
    return str(DEFAULT_ONNX)


def variants(model: str, precisions: Optional[str]) -> List[str]:
    """The model files of the requested precisions that sit next to `model` (same stem)."""
    from edge.modelinfo import parse_variant

    named = parse_variant(model)
    if not precisions or not named.precision:
        return [model]
    found = []
    for precision in (p.strip() for p in precisions.split(",")):
        path = named.with_precision(precision)
        if os.path.exists(path):
            found.append(path)
        else:
            print(f"bkpose-bench: no {precision} variant ({path}); skipped", file=sys.stderr)
    return found


# ---------------------------------------------------------------------------------------- frames
def generated_frames(count: int = 8, width: int = 1280, height: int = 720) -> List[np.ndarray]:
    """Camera-sized frames: smooth random scenes (the built-in source; no files needed)."""
    from export.parity import synthetic_frame

    rng = np.random.default_rng(0)
    return [synthetic_frame(rng, height, width) for _ in range(count)]


def frame_cycle(frames: List[np.ndarray]) -> Iterator[np.ndarray]:
    while True:
        yield from frames


# ---------------------------------------------------------------------------------------- stats
def summarise(samples: Dict[str, List[float]]) -> Dict[str, Dict[str, float]]:
    return {k: time_stats([v / 1e3 for v in values]) for k, values in samples.items() if values}


def crowd_table(people: Sequence[int], decode_ms: Sequence[float]) -> List[Dict[str, Any]]:
    rows = []
    for low, high in CROWD_BUCKETS:
        times = [t for n, t in zip(people, decode_ms) if low <= n <= high]
        if times:
            label = f"{low}" if low == high else (f"{low}+" if high >= 10**6 else f"{low}-{high}")
            rows.append(
                {"people": label, "frames": len(times), "decode_ms": time_stats([t / 1e3 for t in times])}
            )
    return rows


def memory() -> Dict[str, Any]:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    current = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    current = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return {"host_rss_mib": current, "host_peak_rss_mib": peak_kb / 1024.0}


def source_frames(spec: Optional[str]) -> Any:
    """(iterator of BGR frames, description, live) for --source; generated frames by default.

    Files stream: a video or image set is read frame by frame and reopened at its end, so memory
    stays bounded (a long clip never sits decoded in RAM) and `read` includes decoding."""
    if not spec:
        return frame_cycle(generated_frames()), "generated 1280x720 frames (in memory)", False
    from edge.sources import SourceError, open_source

    source = open_source(spec)
    if source.live:
        return (f.image for f in source), source.description, True
    first = next((f.image for f in source if f.image is not None), None)  # fail now, not mid-run
    if first is None:
        raise SourceError(f"{redact(spec)}: no readable frames")
    length = f"{source.length} frames, " if source.length else ""
    return looped(source), f"{redact(source.description)} ({length}streamed, looped)", False


def looped(source: Any) -> Iterator[np.ndarray]:
    """Frames of a finite source, read again from the start at its end (decoding included)."""
    while True:
        delivered = False
        for frame in source:
            if frame.image is not None:
                delivered = True
                yield frame.image
        if not delivered:
            return


# ---------------------------------------------------------------------------------------- runs
class Budget:
    """Stop after N measured frames or S seconds, or when a stop signal came."""

    def __init__(self, frames: Optional[int], duration: Optional[float], stop: Any = None) -> None:
        self.frames, self.duration, self.stop = frames, duration, stop
        self.start = time.perf_counter()

    def more(self, done: int) -> bool:
        if self.stop is not None and self.stop.received is not None:
            return False
        if self.frames is not None and done >= self.frames:
            return False
        return not (self.duration is not None and time.perf_counter() - self.start >= self.duration)


def run_sequential(
    estimator: Any, frames: Iterator[np.ndarray], budget: Budget, warmup_s: float
) -> Dict[str, Any]:
    samples: Dict[str, List[float]] = {s: [] for s in STAGES}
    people: List[int] = []
    decode_ms: List[float] = []
    warm_end = time.perf_counter() + warmup_s
    done = 0
    started = None
    while True:
        t0 = time.perf_counter()
        frame = next(frames, None)
        if frame is None:
            break
        t1 = time.perf_counter()
        poses, timings = estimator.process(frame)
        t2 = time.perf_counter()
        if t2 < warm_end:
            continue
        if started is None:
            started = t0
            budget.start = t0
        timings[stages.READ] = (t1 - t0) * 1e3
        timings[stages.TOTAL] = (t2 - t0) * 1e3
        for key, value in timings.items():
            samples.setdefault(key, []).append(value)
        people.append(len(poses))
        decode_ms.append(timings[stages.PEAKS] + timings[stages.GROUPING])
        done += 1
        if not budget.more(done):
            break
    seconds = time.perf_counter() - (started or time.perf_counter())
    return {"frames": done, "seconds": seconds, "samples": samples, "people": people, "decode_ms": decode_ms,
            "dropped": 0}  # fmt: skip


def run_pipelined(
    estimator: Any, frames: Iterator[np.ndarray], budget: Budget, warmup_s: float, live: bool
) -> Dict[str, Any]:
    from edge.sources import ListSource

    source = ListSource(frames, live=live)
    samples: Dict[str, List[float]] = {s: [] for s in STAGES}
    people: List[int] = []
    decode_ms: List[float] = []
    warm_end = time.perf_counter() + warmup_s
    done, started, dropped_at_start, last = 0, None, 0, None
    for result in estimator.stream(source, policy="latest" if live else "all"):
        now = time.perf_counter()
        if now < warm_end:
            dropped_at_start = result.counters.get("dropped", 0)
            continue
        if started is None:
            started = now
            budget.start = now
            continue  # measure intervals between results from here on
        timings = dict(result.timings_ms)
        timings[stages.TOTAL] = timings.pop(stages.LATENCY, 0.0)
        for key, value in timings.items():
            if key != stages.DECODE:  # peaks + grouping are its parts
                samples.setdefault(key, []).append(value)
        people.append(len(result.poses))
        decode_ms.append(timings.get(stages.PEAKS, 0.0) + timings.get(stages.GROUPING, 0.0))
        done += 1
        last = result
        if not budget.more(done):
            break
    seconds = time.perf_counter() - (started or time.perf_counter())
    dropped = (last.counters.get("dropped", 0) - dropped_at_start) if last else 0
    return {"frames": done, "seconds": seconds, "samples": samples, "people": people, "decode_ms": decode_ms,
            "dropped": dropped}  # fmt: skip


def bench_model(path: str, args: argparse.Namespace, stop: Any = None) -> Dict[str, Any]:
    """One model's run; `stop` (StopSignals) ends the measurement early, keeping what was measured."""
    from edge.pipeline import PoseEstimator

    frames, source_text, live = source_frames(args.source)  # a bad source fails before the model loads
    load_start = time.perf_counter()
    estimator = PoseEstimator(path, device=args.device, threads=args.threads)
    load_s = time.perf_counter() - load_start
    try:
        warm = estimator.warmup()
        budget = Budget(args.frames if args.duration is None else None, args.duration, stop)
        if args.mode == "pipelined":
            raw = run_pipelined(estimator, frames, budget, args.warmup, live)
        else:
            raw = run_sequential(estimator, frames, budget, args.warmup)
        gpu_memory = estimator.backend.memory()
        backend = estimator.backend.describe()
    finally:
        estimator.close()
    stage_stats = summarise(raw["samples"])
    fps = raw["frames"] / raw["seconds"] if raw["seconds"] > 0 else 0.0
    run: Dict[str, Any] = {
        "model": os.path.abspath(path),
        "backend": backend,
        "precision": backend["precision"],
        "mode": args.mode,
        "source": source_text,
        "frames": raw["frames"],
        "seconds": raw["seconds"],
        "fps": fps,
        "stages_ms": stage_stats,
        "one_off_s": {"model_load": load_s, **warm},
        "dropped": raw["dropped"],
        "people_per_frame": {
            "mean": float(np.mean(raw["people"])) if raw["people"] else 0.0,
            "max": int(max(raw["people"], default=0)),
        },  # fmt: skip
        "decode_by_crowd": crowd_table(raw["people"], raw["decode_ms"]),
        "memory": {**memory(), "gpu": gpu_memory},
    }
    if args.mode == "pipelined" and stage_stats:
        run["bound_fps"] = pipelined_bound(stage_stats)
        run["fraction_of_bound"] = fps / run["bound_fps"] if run["bound_fps"] else None
    return run


def pipelined_bound(stage_stats: Dict[str, Dict[str, float]]) -> Optional[float]:
    """1 / slowest pipeline thread, in FPS: capture (read), inference (preprocess + infer), decode
    (peaks + grouping), from the stages' mean ms. Throughput is frames over seconds, a mean, so
    the bound uses means too (medians gave ratios above 100 % on skewed stage times)."""

    def mean(name: str) -> float:
        return stage_stats.get(name, {}).get("mean", 0.0)

    slowest = max(
        mean(stages.READ),
        mean(stages.PREPROCESS) + mean(stages.INFER),
        mean(stages.PEAKS) + mean(stages.GROUPING),
    )
    return 1e3 / slowest if slowest > 0 else None


# ---------------------------------------------------------------------------------------- output
def print_run(run: Dict[str, Any]) -> None:
    backend = run["backend"]
    where = "GPU" if backend["on_gpu"] else "CPU"
    print(f"\n{os.path.basename(run['model'])}: {backend['backend']} on {where}, {run['precision']}, "
          f"{run['mode']}, {run['frames']} frames of {run['source']}")  # fmt: skip
    if not backend.get("trained", True):
        print("model         UNTRAINED (random weights): speed numbers only, its poses are not people")
    print(f"{'stage':<13} {'min':>8} {'median':>8} {'p90':>8} {'p99':>8} {'max':>8}   (ms)")
    for name in STAGES:
        st = run["stages_ms"].get(name)
        if st:
            values = " ".join(f"{st[k]:>8.3f}" for k in ("min", "median", "p90", "p99", "max"))
            print(f"{name:<13} {values}")
    line = f"throughput    {run['fps']:.1f} FPS ({run['mode']})"
    if run.get("bound_fps"):
        line += f"; {run['fraction_of_bound']:.0%} of 1/slowest stage ({run['bound_fps']:.1f} FPS)"
    print(line + f"; dropped {run['dropped']}")
    one = ", ".join(f"{k} {v:.2f} s" for k, v in run["one_off_s"].items())
    print(f"one-off       {one}")
    crowd = "; ".join(
        f"{r['people']}: {r['decode_ms']['median']:.2f} ms ({r['frames']})" for r in run["decode_by_crowd"]
    )
    print(f"people/frame  mean {run['people_per_frame']['mean']:.1f}, max {run['people_per_frame']['max']}; "
          f"decode median by people found: {crowd}")  # fmt: skip
    mem = run["memory"]
    gpu = f", GPU {mem['gpu']['used_mib']:.0f} MiB used" if mem.get("gpu") else ""
    print(f"memory        host RSS {mem['host_rss_mib']:.0f} MiB (peak {mem['host_peak_rss_mib']:.0f}){gpu}")


def print_stamp(stamp: Dict[str, Any]) -> None:
    v = stamp["versions"]
    gpu = stamp["gpu"].get("name") if stamp.get("gpu") else None
    name = stamp["board"] if stamp["jetson"] else stamp["cpu_model"]
    line = f"device        {name}, {stamp['cpu_cores']} cores" + (f", GPU {gpu}" if gpu else "")
    if stamp["jetson"]:
        line += f", L4T {stamp['l4t']}, nvpmodel {stamp['nvpmodel']}, clocks {stamp['jetson_clocks']}"
    print(line)
    libs = ", ".join(
        f"{k} {v[k]}" for k in ("python", "numpy", "numba", "opencv", "onnxruntime", "tensorrt", "cuda")
    )
    print(f"versions      {libs}")
    for warning in stamp.get("warnings", []):
        print(f"WARNING       {warning}")


def compare(paths: Sequence[str]) -> int:
    a, b = (json.loads(Path(p).read_text()) for p in paths)
    print(f"{'':<24} {'A':>12} {'B':>12} {'B/A':>8}")
    print(f"{'':<24} {os.path.basename(paths[0]):>12.12} {os.path.basename(paths[1]):>12.12}")
    for ra, rb in zip(a["runs"], b["runs"]):
        print(f"-- {ra['precision']} {ra['mode']} vs {rb['precision']} {rb['mode']}")
        rows = [("FPS", ra["fps"], rb["fps"])]
        for stage in STAGES:
            sa, sb = ra["stages_ms"].get(stage), rb["stages_ms"].get(stage)
            if sa and sb:
                rows.append((f"{stage} median ms", sa["median"], sb["median"]))
                rows.append((f"{stage} p99 ms", sa["p99"], sb["p99"]))
        for label, va, vb in rows:
            ratio = vb / va if va else float("nan")
            print(f"{label:<24} {va:>12.3f} {vb:>12.3f} {ratio:>8.2f}")
    return 0


# ---------------------------------------------------------------------------------------- accuracy
def accuracy(models: List[str], args: argparse.Namespace) -> Dict[str, Any]:
    """COCO keypoint AP of every precision variant and its OKS agreement with the FP32 poses."""
    import cv2

    from benchmarks.common import coco_keypoint_scores, load_coco_keypoints
    from edge.decode.agreement import agreement
    from edge.pipeline import PoseEstimator

    coco = load_coco_keypoints(args.annotations)
    images = [im for im in coco["images"] if os.path.exists(os.path.join(args.images, im["file_name"]))]
    if not images:
        raise UsageError(f"none of the annotated images is under {args.images}")
    per_model: Dict[str, Any] = {}
    poses_of: Dict[str, List[Any]] = {}
    from tqdm import tqdm

    for path in models:
        with PoseEstimator(path, device=args.device, threads=args.threads) as estimator:
            estimator.warmup()
            results, poses = [], []
            name = os.path.basename(path)
            for image in tqdm(images, desc=name, unit="image", file=sys.stderr, dynamic_ncols=True):
                frame = cv2.imread(os.path.join(args.images, image["file_name"]))
                found = estimator(frame)
                poses.append(found)
                results.extend(found.to_coco_results(image["id"]))
            precision = estimator.info.precision
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
    return {"images": len(images), "reference": reference, "by_precision": per_model}


# ---------------------------------------------------------------------------------------- CLI
class UsageError(Exception):
    """A user mistake (missing file, bad model or source, unwritable output): one line, exit 2."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bkpose-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", "--engine", dest="model",
        help=".onnx or .engine (default: a fitting engine in engines/, else the random-init ONNX)",
    )  # fmt: skip
    p.add_argument(
        "--source",
        help="video, image folder/glob, camera index, csi://N, rtsp://... (default: generated frames)",
    )
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--frames", type=at_least(1, int), default=200, help="measured frames (default 200)")
    amount.add_argument("--duration", type=above(0.0), help="measure for S seconds instead")
    p.add_argument(
        "--warmup",
        type=at_least(0.0, float),
        default=1.0,
        help="seconds of unmeasured frames first (default 1)",
    )
    p.add_argument("--mode", choices=("sequential", "pipelined"), default="pipelined")
    p.add_argument("--precision", help="comma list: sweep the variants next to --model (e.g. fp32,fp16,int8)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--threads", type=at_least(0, int), default=0, help="ONNX Runtime CPU threads (0: its default)"
    )
    p.add_argument("--json", default=str(RESULTS_DIR / "bench.json"), help="where to write the JSON result")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="print two results side by side")
    p.add_argument(
        "--accuracy",
        action="store_true",
        help="COCO keypoint AP per precision (needs --annotations, --images)",
    )
    p.add_argument("--annotations", help="COCO person keypoints JSON")
    p.add_argument("--images", help="folder with the annotated images")
    p.add_argument(
        "--max-ap-drop",
        type=float,
        help="with --accuracy: fail (exit 1) if a variant loses more AP than this",
    )
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
        try:
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
    models = variants(model, args.precision)
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
            for path in models:
                run = bench_model(path, args, stop)
                payload["runs"].append(run)
                print_run(run)
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
