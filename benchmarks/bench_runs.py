"""The measured loops of `bkpose-bench`: sources streamed frame by frame, sequential and pipelined
runs through `PoseEstimator`, per-stage statistics (`edge.stages` names), crowd buckets, memory."""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

from benchmarks.common import time_stats
from edge import stages
from edge.backends.choice import backend_choice
from edge.redact import redact

STAGES = stages.REPORTED  # the table's rows and --compare's, in order (edge/stages.py)
CROWD_BUCKETS = ((0, 0), (1, 2), (3, 5), (6, 10), (11, 20), (21, 10**6))


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
    from edge.sources import SourceError, SyntheticSource, open_source

    source = open_source(spec) if spec else SyntheticSource()
    if isinstance(source, SyntheticSource):
        return (f.image for f in source), source.description, False
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


def record(result: Any, samples: Dict[str, List[float]], people: List[int], decode_ms: List[float]) -> float:
    """One pipelined result into the stage samples, people and decode times; returns its total
    (capture to result) in ms."""
    timings = dict(result.timings_ms)
    timings[stages.TOTAL] = timings.pop(stages.LATENCY, 0.0)
    for key, value in timings.items():
        if key != stages.DECODE:  # peaks + grouping are its parts
            samples.setdefault(key, []).append(value)
    people.append(len(result.poses))
    decode_ms.append(timings.get(stages.PEAKS, 0.0) + timings.get(stages.GROUPING, 0.0))
    return timings[stages.TOTAL]


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
        record(result, samples, people, decode_ms)
        done += 1
        last = result
        if not budget.more(done):
            break
    seconds = time.perf_counter() - (started or time.perf_counter())
    dropped = (last.counters.get("dropped", 0) - dropped_at_start) if last else 0
    return {"frames": done, "seconds": seconds, "samples": samples, "people": people, "decode_ms": decode_ms,
            "dropped": dropped}  # fmt: skip


def bench_model(
    path: str,
    args: argparse.Namespace,
    stop: Any = None,
    measure: Optional[Callable[..., Dict[str, Any]]] = None,
) -> Dict[str, Any]:
    """One model's run; `stop` (StopSignals) ends the measurement early, keeping what was measured.
    `measure(estimator, args, budget)` replaces the sequential or pipelined loop (several streams)."""
    from edge.pipeline import PoseEstimator

    frames, source_text, live = source_frames(args.source)  # a bad source fails before the model loads
    load_start = time.perf_counter()
    estimator = PoseEstimator(path, **backend_choice(args))
    load_s = time.perf_counter() - load_start
    try:
        warm = estimator.warmup()
        budget = Budget(args.frames if args.duration is None else None, args.duration, stop)
        if measure is not None:
            raw = measure(estimator, args, budget)
        elif args.mode == "pipelined":
            raw = run_pipelined(estimator, frames, budget, args.warmup, live)
        else:
            raw = run_sequential(estimator, frames, budget, args.warmup)
        gpu_memory = estimator.backend.memory()
        backend = estimator.backend.describe()
        decoder = {
            "params": dataclasses.asdict(estimator.decoder.params),
            "from_model": estimator.info.decoder,
        }
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
        "decoder": decoder,
    }
    if "streams" in raw:
        run["streams"] = raw["streams"]
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
