"""Inference latency and throughput per backend and precision, on the same exported model.

Every model file given (default: all `engines/*.onnx` and `engines/*.engine`) is opened with the
backend its type names: ONNX files in ONNX Runtime on the CPU (and with the CUDA provider too where
onnxruntime-gpu is installed), engines in TensorRT. Each runs `--warmup` calls, then `--iterations`
timed calls on a fixed random input; latency is host wall time per call (input copy, inference,
output copy; for TensorRT also the GPU time of each part by CUDA events); throughput is
images per second over the timed calls, run back to back.

    python -m benchmarks.backends [MODEL ...] [--iterations N] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import glob
import os
import time
from typing import Any, Dict, List, Optional

import numpy as np

from benchmarks.common import RESULTS_DIR, environment, time_stats, write_json
from edge.backends import open_backend


def measure(path: str, device: str, iterations: int, warmup: int, threads: int) -> Dict[str, Any]:
    options = {"threads": threads} if path.endswith(".onnx") else {}
    load_start = time.perf_counter()
    with open_backend(path, device=device, **options) as backend:
        load_s = time.perf_counter() - load_start
        shape = tuple(d if isinstance(d, int) else 1 for d in backend.input.shape)
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        first = time.perf_counter()
        backend.infer(x)
        first_s = time.perf_counter() - first
        for _ in range(warmup):
            backend.infer(x)
        samples: List[float] = []
        gpu: Dict[str, List[float]] = {}
        total = time.perf_counter()
        for _ in range(iterations):
            t = time.perf_counter()
            backend.infer(x)
            samples.append(time.perf_counter() - t)
            for key, value in backend.last_timings.items():
                if key.endswith("_gpu_ms"):
                    gpu.setdefault(key, []).append(value / 1e3)
        total_s = time.perf_counter() - total
        return {
            "model": os.path.basename(path),
            "backend": backend.name,
            "device": "gpu" if backend.on_gpu else "cpu",
            "precision": backend.info.precision,
            "batch": shape[0],
            "load_s": load_s,
            "first_inference_s": first_s,
            "latency_ms": time_stats(samples),
            "gpu_ms": {k: time_stats(v) for k, v in gpu.items()},
            "throughput_ips": shape[0] * iterations / total_s,
            "describe": backend.describe(),
        }


def default_models() -> List[str]:
    found = glob.glob(os.path.join("engines", "*.onnx")) + glob.glob(os.path.join("engines", "*.engine"))
    return sorted(found)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help="ONNX files and/or TensorRT engines (default: engines/*)")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime CPU threads (0: its default)")
    p.add_argument("--json", default=str(RESULTS_DIR / "backends.json"))
    args = p.parse_args(argv)
    models = args.models or default_models()
    if not models:
        p.error("no models: run `bkpose-export --random-init --out engines/` first, or pass files")

    import onnxruntime as ort

    runs = []
    for path in models:
        devices = ["cpu"]
        if path.endswith(".onnx") and "CUDAExecutionProvider" in ort.get_available_providers():
            devices.append("cuda")
        if not path.endswith(".onnx"):
            devices = ["auto"]
        for device in devices:
            runs.append(measure(path, device, args.iterations, args.warmup, args.threads))

    print(f"{args.iterations} timed calls after {args.warmup} warm-up; host latency per call in ms")
    print(f"{'model':<34} {'backend':<12} {'dev':<4} {'prec':<5} {'median':>8} {'p90':>8} {'p99':>8} "
          f"{'img/s':>8} {'gpu infer':>10} {'first s':>8}")  # fmt: skip
    for r in runs:
        lat = r["latency_ms"]
        gpu = r["gpu_ms"].get("infer_gpu_ms", {}).get("median")
        gpu_text = f"{gpu:.3f}" if gpu is not None else "-"
        name = f"{r['model']:<34} {r['backend']:<12} {r['device']:<4} {r['precision']:<5}"
        times = f"{lat['median']:>8.2f} {lat['p90']:>8.2f} {lat['p99']:>8.2f} {r['throughput_ips']:>8.1f}"
        print(f"{name} {times} {gpu_text:>10} {r['first_inference_s']:>8.2f}")
    payload = {
        "benchmark": "backends",
        "environment": environment(),
        "iterations": args.iterations,
        "runs": runs,
    }
    print(f"JSON: {write_json(args.json, payload)}")
    return payload


if __name__ == "__main__":
    main()
