"""`bkpose-bench --streams N`: N copies of the source in one run through `stream_many` (one
capture thread each, the batcher, per-stream decoding). Reports the aggregate FPS, each stream's
FPS and capture-to-result latency (p50, p99), the batch sizes actually used, and fairness: each
stream's share of the frames."""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, List

import numpy as np

from benchmarks.bench_runs import STAGES, Budget, record, source_frames


def run_streams(estimator: Any, args: argparse.Namespace, budget: Budget) -> Dict[str, Any]:
    """The same raw measurements as `run_pipelined`, over `args.streams` sources, plus `streams`."""
    from edge.sources import ListSource

    count = args.streams
    opened = [source_frames(args.source) for _ in range(count)]  # each stream reads its own copy
    live = opened[0][2]
    sources = {f"s{i}": ListSource(frames, live=live) for i, (frames, _, _) in enumerate(opened)}
    batch = estimator.choose_batch(count) if args.batch == "auto" else int(args.batch)
    samples: Dict[str, List[float]] = {s: [] for s in STAGES}
    people: List[int] = []
    decode_ms: List[float] = []
    latency: Dict[str, List[float]] = {name: [] for name in sources}
    warm_end = time.perf_counter() + args.warmup
    done, started, last = 0, None, None
    dropped_at_start: Dict[str, int] = {}
    dropped_now: Dict[str, int] = {}
    for result in estimator.stream_many(sources, policy="latest" if live else "all", batch=batch):
        now = time.perf_counter()
        dropped_now[result.stream] = result.counters.get("dropped", 0)
        if now < warm_end or started is None:
            dropped_at_start[result.stream] = dropped_now[result.stream]
            if now >= warm_end:
                started = budget.start = now
                estimator.batch_sizes.clear()  # count from here on
            continue
        latency[result.stream].append(record(result, samples, people, decode_ms))
        done += 1
        last = result
        if not budget.more(done):
            break
    seconds = time.perf_counter() - (started or time.perf_counter())
    per_stream = {
        name: {
            "frames": len(values),
            "fps": len(values) / seconds if seconds > 0 else 0.0,
            "share": len(values) / done if done else 0.0,
            "latency_ms_p50": float(np.percentile(values, 50)) if values else None,
            "latency_ms_p99": float(np.percentile(values, 99)) if values else None,
        }
        for name, values in latency.items()
    }
    dropped = sum(dropped_now.get(n, 0) - dropped_at_start.get(n, 0) for n in sources) if last else 0
    streams = {
        "count": count, "batch": batch, "batch_trials_ms_per_frame": getattr(estimator, "batch_trials", {}),
        "batch_sizes_used": {str(k): v for k, v in sorted(estimator.batch_sizes.items())},
        "aggregate_fps": done / seconds if seconds > 0 else 0.0, "per_stream": per_stream,
    }  # fmt: skip
    return {"frames": done, "seconds": seconds, "samples": samples, "people": people, "decode_ms": decode_ms,
            "dropped": dropped, "streams": streams}  # fmt: skip


def print_streams(streams: Dict[str, Any]) -> None:
    used = ", ".join(f"{size} x{n}" for size, n in streams["batch_sizes_used"].items())
    print(f"streams       {streams['count']}: {streams['aggregate_fps']:.1f} FPS in all; batch "
          f"{streams['batch']} (used: {used})")  # fmt: skip
    for name, s in streams["per_stream"].items():
        p50 = "n/a" if s["latency_ms_p50"] is None else f"{s['latency_ms_p50']:.0f}"
        p99 = "n/a" if s["latency_ms_p99"] is None else f"{s['latency_ms_p99']:.0f}"
        print(f"  {name:<6} {s['fps']:6.1f} FPS  share {s['share']:.3f}  latency p50 {p50} ms, p99 {p99} ms")
