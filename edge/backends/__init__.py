"""Inference backends behind one interface (`Backend`): ONNX Runtime, OpenVINO and TensorRT.

`open_backend(path)` picks by file type: `.onnx` opens in ONNX Runtime (or OpenVINO when asked),
`.engine` / `.plan` in TensorRT (its `.json` sidecar is validated first). TensorRT, pycuda and
OpenVINO are imported only then.
"""

from __future__ import annotations

import os
from typing import Any

from edge.backends.base import Backend, TensorSpec
from edge.errors import ModelError

ENGINE_SUFFIXES = (".engine", ".plan")


BACKENDS = ("auto", "ort", "openvino", "tensorrt")


def _openvino_fits(device: str) -> bool:
    """`auto` on the CPU: OpenVINO when installed (measured faster than ONNX Runtime there), but
    not when the GPU was asked for, or offered through onnxruntime-gpu."""
    if device == "cuda":
        return False
    from edge.backends.openvino import openvino_available

    if not openvino_available():
        return False
    if device == "auto":
        try:
            import onnxruntime
        except ImportError:
            return True
        return "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
    return True


def open_backend(
    path: str, device: str = "auto", backend: str = "auto", ov_precision: str = "f32", **options: Any
) -> Backend:
    """Open `path` with the backend its suffix names, or `backend` for an .onnx file ("ort",
    "openvino"; "auto": OpenVINO where it is installed and the model is to run on the CPU, else
    ONNX Runtime). `device`: "cpu", "cuda" or "auto". `ov_precision`: OpenVINO's inference
    precision whenever OpenVINO opens the file, by name or through "auto"."""
    if not os.path.isfile(path):
        raise ModelError(f"{path}: model file not found")
    if backend not in BACKENDS:
        raise ModelError(f"backend must be one of {BACKENDS}, found {backend!r}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".onnx" and backend == "tensorrt":
        raise ModelError(f"{path}: build a TensorRT engine from it (bkpose-build) and pass the .engine")
    if suffix == ".onnx" and (backend == "openvino" or (backend == "auto" and _openvino_fits(device))):
        from edge.backends.openvino import OpenVinoBackend

        return OpenVinoBackend(path, device="cpu", precision=ov_precision, **options)
    if suffix == ".onnx":
        from edge.backends.ort import OrtBackend

        return OrtBackend(path, device="cpu" if device == "cpu" else device, **options)
    if suffix in ENGINE_SUFFIXES:
        if device == "cpu":
            raise ModelError(
                f"{path}: a TensorRT engine runs on the GPU only; pass the .onnx file for the CPU"
            )
        from edge.backends.trt import TensorRTBackend

        return TensorRTBackend(path, **options)
    raise ModelError(f"{path}: unknown model type {suffix!r}; expected .onnx, .engine or .plan")


__all__ = ["Backend", "TensorSpec", "open_backend"]
