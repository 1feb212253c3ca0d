"""Letterbox preprocessing time: CPU reference versus the fused CUDA kernel, per frame size.

For 640x480, 1280x720, 1920x1080 and 3840x2160 random BGR frames into a 512x512 float32 input:
  cpu            CpuPreprocessor's default: OpenCV resize + numpy normalisation, reused buffer
  cpu_exact      its exact path (Numba, one thread), the definition the GPU kernel matches
  gpu_upload     CUDA events around pinned-host-to-device upload + kernel (what a host frame costs)
  gpu_kernel     CUDA events around the kernel alone (frame already on the device)
plus the memory-bandwidth floor of the kernel: the bytes it must read (the source pixels its
bilinear taps touch) and write (the input tensor), over the device-to-device copy bandwidth
measured here. Without pycuda or a GPU the GPU rows say why they are missing.

    python -m benchmarks.preprocess [--iterations N] [--fp16] [--json OUT]
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, List, Optional

import numpy as np

from benchmarks.common import RESULTS_DIR, environment, time_stats, write_json
from edge.geometry import letterbox
from edge.modelinfo import ModelInfo
from edge.preprocess import CpuPreprocessor

SIZES = ((640, 480), (1280, 720), (1920, 1080), (3840, 2160))


def bytes_touched(width: int, height: int, info: ModelInfo, out_itemsize: int) -> int:
    """Bytes the kernel must move: source rows/columns its taps read, plus the whole output."""
    lb = letterbox(width, height, info.input_width, info.input_height, info.letterbox_align)
    cols = min(width, 2 * lb.resized_w)
    rows = min(height, 2 * lb.resized_h)
    return cols * rows * 3 + 3 * info.input_width * info.input_height * out_itemsize


def time_cpu(frame: np.ndarray, iterations: int, exact: bool = False) -> Dict[str, float]:
    pre = CpuPreprocessor(exact=exact)
    out = pre.new_input()
    pre(frame, out)  # compile / warm
    samples = []
    for _ in range(iterations):
        t = time.perf_counter()
        pre(frame, out)
        samples.append(time.perf_counter() - t)
    return time_stats(samples)


def copy_bandwidth(device: Any, nbytes: int = 256 << 20) -> float:
    """Device-to-device copy bandwidth in bytes/s (reads + writes), best of 5."""
    with device.active():
        a, b = device.alloc(nbytes), device.alloc(nbytes)
        start, end = device.event(), device.event()
        best = float("inf")
        for _ in range(5):
            start.record()
            device.cuda.memcpy_dtod(b.ptr, a.ptr, nbytes)
            end.record()
            end.synchronize()
            best = min(best, start.time_till(end) / 1e3)
        a.free()
        b.free()
    return 2 * nbytes / best


def time_gpu(device: Any, frame: np.ndarray, iterations: int, dtype: Any) -> Dict[str, Any]:
    from edge.cuda.letterbox import GpuPreprocessor

    with device.active():
        pre = GpuPreprocessor(device, dtype=dtype)
        dst = device.alloc(pre.input_nbytes)
        src = device.alloc(frame.nbytes)
        device.upload(src, np.ascontiguousarray(frame))
        stream = device.stream()
        start, end = device.event(), device.event()
        h, w = frame.shape[:2]
        for _ in range(3):  # warm: module load, first launches
            pre(frame, dst.ptr, stream)
        stream.synchronize()
        with_upload: List[float] = []
        kernel: List[float] = []
        for _ in range(iterations):
            start.record(stream)
            pre(frame, dst.ptr, stream)
            end.record(stream)
            end.synchronize()
            with_upload.append(start.time_till(end) / 1e3)
        for _ in range(iterations):
            start.record(stream)
            pre.run_device(src.ptr, w, h, w * 3, dst.ptr, stream)
            end.record(stream)
            end.synchronize()
            kernel.append(start.time_till(end) / 1e3)
        pre.close()
        dst.free()
        src.free()
    return {"gpu_upload": time_stats(with_upload), "gpu_kernel": time_stats(kernel)}


def open_device() -> Any:
    try:
        from edge.cuda.device import CudaDevice

        return CudaDevice(0), None
    except Exception as err:  # CudaUnavailable, driver errors
        return None, str(err)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--fp16", action="store_true", help="GPU kernel writes float16 (TensorRT FP16 input)")
    p.add_argument("--json", default=str(RESULTS_DIR / "preprocess.json"))
    args = p.parse_args(argv)

    info = ModelInfo()
    dtype = np.float16 if args.fp16 else np.float32
    device, why = open_device()
    bandwidth = copy_bandwidth(device) if device is not None else None
    rng = np.random.default_rng(0)
    rows = []
    for w, h in SIZES:
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        row: Dict[str, Any] = {"width": w, "height": h, "cpu": time_cpu(frame, args.iterations),
                               "cpu_exact": time_cpu(frame, args.iterations, exact=True)}  # fmt: skip
        nbytes = bytes_touched(w, h, info, np.dtype(dtype).itemsize)
        row["kernel_bytes"] = nbytes
        if device is not None:
            row.update(time_gpu(device, frame, args.iterations, dtype))
            row["floor_ms"] = nbytes / bandwidth * 1e3
            row["kernel_vs_floor"] = row["gpu_kernel"]["median"] / row["floor_ms"]
            row["speedup_upload_vs_cpu"] = row["cpu"]["median"] / row["gpu_upload"]["median"]
        rows.append(row)

    print(f"letterbox to 512x512 {np.dtype(dtype).name}; medians (p90) in ms; {args.iterations} iterations")
    if device is None:
        print(f"GPU: not measured ({why})")
    else:
        print(f"GPU: {device.name}, copy bandwidth {bandwidth / 1e9:.0f} GB/s (device-to-device, measured)")
    columns = ("cpu", "cpu exact", "gpu upload+kernel", "gpu kernel", "floor", "x floor", "speedup")
    widths = (16, 16, 20, 16, 8, 8, 8)
    print(f"{'frame':>10} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
    for r in rows:
        cpu = f"{r['cpu']['median']:.3f} ({r['cpu']['p90']:.3f})"
        cpu += f" {r['cpu_exact']['median']:>8.3f} ({r['cpu_exact']['p90']:.3f})"
        if "gpu_kernel" in r:
            up = f"{r['gpu_upload']['median']:.3f} ({r['gpu_upload']['p90']:.3f})"
            k = f"{r['gpu_kernel']['median']:.4f} ({r['gpu_kernel']['p90']:.4f})"
            ratio, speedup = r["kernel_vs_floor"], r["speedup_upload_vs_cpu"]
            tail = f"{up:>20} {k:>16} {r['floor_ms']:>8.4f} {ratio:>8.2f} {speedup:>7.1f}x"
        else:
            tail = f"{'-':>20} {'-':>16} {'-':>8} {'-':>8} {'-':>8}"
        print(f"{r['width']:>5}x{r['height']:<4} {cpu:>33} {tail}")
    payload = {
        "benchmark": "preprocess",
        "environment": environment(),
        "gpu": None if device is None else {"name": device.name, "copy_bandwidth_Bps": bandwidth},
        "gpu_unavailable_reason": why,
        "output_dtype": np.dtype(dtype).name,
        "iterations": args.iterations,
        "sizes": rows,
    }
    print(f"JSON: {write_json(args.json, payload)}")
    if device is not None:
        device.close()
    return payload


if __name__ == "__main__":
    main()
