"""What `bkpose-bench` prints: the stage table of a run, the device stamp, and two results side
by side (`--compare`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Sequence

from benchmarks.bench_runs import STAGES


def print_run(run: Dict[str, Any]) -> None:
    backend = run["backend"]
    where = "GPU" if backend["on_gpu"] else "CPU"
    computes = backend.get("inference_precision")  # OpenVINO's: what the file holds is not what runs
    precision = run["precision"] + (f" file computed in {computes}" if computes else "")
    print(f"\n{os.path.basename(run['model'])}: {backend['backend']} on {where}, {precision}, "
          f"{run['mode']}, {run['frames']} frames of {run['source']}")  # fmt: skip
    if not backend.get("trained", True):
        print("model         UNTRAINED (random weights): speed numbers only, its poses are not people")
    own = run.get("decoder", {}).get("from_model")
    if own:
        mine = ", ".join(f"{k} {v}" for k, v in sorted(own.items()))
        print(f"decoder       {mine} (measured for this model; python -m benchmarks.decoder_sweep)")
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
