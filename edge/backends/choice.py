"""The backend options every CLI shares (`bkpose-run`, `bkpose-bench`): which runtime opens an
.onnx file, on which device, with how many threads, at which OpenVINO precision."""

from __future__ import annotations

import argparse
from typing import Any, Dict

from edge.argtypes import at_least


def add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--threads", type=at_least(0), default=0, help="CPU inference threads (0: the runtime's default)"
    )
    p.add_argument("--backend", choices=("auto", "ort", "openvino"), default="auto",
                   help="for .onnx: ONNX Runtime (auto, ort) or OpenVINO (CPU; openvino extra)")  # fmt: skip
    p.add_argument("--ov-precision", choices=("f32", "bf16", "auto"), default="f32",
                   help="OpenVINO inference precision (bf16 where the CPU has it)")  # fmt: skip


def backend_choice(args: argparse.Namespace) -> Dict[str, Any]:
    """PoseEstimator keyword arguments from `add_backend_options`' options."""
    options = {"precision": args.ov_precision} if args.backend == "openvino" else {}
    return {
        "device": args.device,
        "threads": args.threads,
        "backend": args.backend,
        "backend_options": options,
    }
