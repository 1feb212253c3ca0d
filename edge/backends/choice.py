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
                   help="for .onnx: OpenVINO (CPU; the openvino extra) or ONNX Runtime; auto: OpenVINO "
                        "where it is installed and the model runs on the CPU, else ONNX Runtime")  # fmt: skip
    p.add_argument("--ov-precision", choices=("f32", "bf16", "auto"), default="f32",
                   help="OpenVINO inference precision, whenever OpenVINO runs the model: f32, or bf16 "
                        "where the CPU has it (faster; poses move more than with ONNX FP16)")  # fmt: skip


def backend_choice(args: argparse.Namespace) -> Dict[str, Any]:
    """PoseEstimator keyword arguments from `add_backend_options`' options."""
    return {
        "device": args.device,
        "threads": args.threads,
        "backend": args.backend,
        "backend_options": {"ov_precision": args.ov_precision},  # used only if OpenVINO opens it
    }
