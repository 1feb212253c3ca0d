"""Which model `bkpose-bench` runs: an engine in engines/ that opens here, else the default ONNX
(`edge.default_model`); and the precision variants beside a model file, plus OpenVINO's bf16
compute of the FP32 file (`--precision fp32,bf16,int8`)."""

from __future__ import annotations

import argparse
import glob
import os
import sys
from typing import Any, List, NamedTuple, Optional


def default_model(quiet: bool = False) -> str:
    """An engine in the engines folder that opens on this machine (TensorRT present, its sidecar
    fitting this GPU), else the default ONNX: the shipped trained weights, exported on first use
    (the untrained model where none ship)."""
    from edge.backends import open_backend
    from edge.default_model import default_onnx, engines_dir
    from edge.errors import BKPoseError

    reasons = []
    for engine in sorted(glob.glob(str(engines_dir() / "*.engine"))):
        try:
            open_backend(engine).close()
            return engine
        except BKPoseError as err:
            reasons.append(str(err))
    if reasons and not quiet:
        print(f"bkpose-bench: engines in {engines_dir()} not usable here ({reasons[0]}); using ONNX Runtime",
              file=sys.stderr)  # fmt: skip
    return default_onnx(lambda line: print(f"bkpose-bench: {line}", file=sys.stderr, flush=True))


class ModelRun(NamedTuple):
    """One entry of a sweep: the file, what the sweep calls it ("" for the file's own precision)
    and the OpenVINO compute precision to ask for (None: the command line's --ov-precision)."""

    path: str
    label: str = ""
    ov_precision: Optional[str] = None


def variants(model: str, precisions: Optional[str], backend: str = "auto") -> List[ModelRun]:
    """The model files of the requested precisions that sit next to `model` (same stem). "bf16"
    is the FP32 ONNX file computed in bf16 by OpenVINO, where OpenVINO runs it and the CPU has bf16."""
    from edge.modelinfo import parse_variant

    named = parse_variant(model)
    if not precisions or not named.precision:
        return [ModelRun(model)]
    found = []
    for precision in (p.strip() for p in precisions.split(",")):
        if precision == "bf16":
            path = named.with_precision("fp32", ".onnx")
            why = bf16_unavailable(backend)
            if why is None and os.path.exists(path):
                found.append(ModelRun(path, "bf16", "bf16"))
            else:
                print(
                    f"bkpose-bench: no bf16 variant ({why or path + ' is missing'}); skipped", file=sys.stderr
                )
            continue
        path = named.with_precision(precision)
        if os.path.exists(path):
            found.append(ModelRun(path, precision, None if precision != "fp32" else "f32"))
        else:
            print(f"bkpose-bench: no {precision} variant ({path}); skipped", file=sys.stderr)
    return found


def bf16_unavailable(backend: str) -> Optional[str]:
    """Why OpenVINO's bf16 compute cannot run here, or None."""
    from edge.backends.openvino import cpu_has_bf16, openvino_available

    if backend not in ("auto", "openvino"):
        return f"bf16 is OpenVINO's, and --backend is {backend}"
    if not openvino_available():
        return "OpenVINO is not installed"
    if not cpu_has_bf16():
        return "this CPU has no bf16"
    return None


def with_ov_precision(args: Any, entry: ModelRun) -> Any:
    """`args` with the entry's OpenVINO compute precision, where the sweep names one."""
    if entry.ov_precision is None:
        return args
    return argparse.Namespace(**{**vars(args), "ov_precision": entry.ov_precision})
