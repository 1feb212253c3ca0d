"""Model throughput at batch 1, 2, 4 and 8: what batching several cameras could gain on a device.

    python -m benchmarks.batch_throughput [--device cuda] [--batches 1,2,4,8] [--iters 50]

TensorRT cannot be installed in this workplace and ONNX Runtime's CUDA provider is not on the lent
GPU machines, so on a GPU this times the network in PyTorch FP16 (channels_last, CUDA events) as
the stand-in, and says so in the JSON (`runtime`). On a CPU it times PyTorch FP32, the reference
for the claim that a batch does not pay there. Warm-up calls per batch size are excluded. Writes
`results/batch_throughput.json` (or `--out`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.common import RESULTS_DIR, environment, write_json


def time_batches(
    device: str, batches: Sequence[int], size: int, iters: int, warmup: int = 5
) -> List[Dict[str, Any]]:
    import torch

    from export.model import BKPose

    model = BKPose().eval().to(device, memory_format=torch.channels_last)
    dtype = torch.float16 if device == "cuda" else torch.float32
    model = model.to(dtype)
    rows = []
    with torch.inference_mode():
        for batch in batches:
            x = torch.rand(batch, 3, size, size, device=device, dtype=dtype)
            x = x.contiguous(memory_format=torch.channels_last)
            for _ in range(warmup):
                model(x)
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                for _ in range(iters):
                    model(x)
                end.record()
                end.synchronize()
                total_ms = start.elapsed_time(end)
            else:
                t0 = time.perf_counter()
                for _ in range(iters):
                    model(x)
                total_ms = (time.perf_counter() - t0) * 1e3
            per_call = total_ms / iters
            rows.append({"batch": batch, "ms_per_call": per_call, "ms_per_frame": per_call / batch,
                         "frames_per_s": 1e3 * batch / per_call})  # fmt: skip
            print(f"batch {batch}: {per_call:8.3f} ms/call  {per_call / batch:7.3f} ms/frame  "
                  f"{1e3 * batch / per_call:8.1f} frames/s", flush=True)  # fmt: skip
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batches", default="1,2,4,8", help="comma-separated batch sizes")
    p.add_argument("--input-size", type=int, default=512)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "batch_throughput.json")
    args = p.parse_args(argv)
    import torch

    batches = [int(b) for b in args.batches.split(",")]
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: PyTorch sees no GPU")
    runtime = "pytorch-fp16 (stand-in for TensorRT)" if args.device == "cuda" else "pytorch-fp32"
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else environment()["processor"]
    print(f"{runtime} on {device_name}, input {args.input_size}, {args.iters} calls per batch", flush=True)
    rows = time_batches(args.device, batches, args.input_size, args.iters)
    base = rows[0]["frames_per_s"]
    for row in rows:
        row["speedup_vs_first"] = row["frames_per_s"] / base
    write_json(args.out, {"runtime": runtime, "device": device_name, "input_size": args.input_size,
                          "iters": args.iters, "rows": rows, "environment": environment()})  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
