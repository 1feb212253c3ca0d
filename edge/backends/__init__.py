"""Inference backends behind one interface (`Backend`): ONNX Runtime and TensorRT.

`open_backend(path)` picks by file type: `.onnx` opens in ONNX Runtime, `.engine` / `.plan` in
TensorRT (its `.json` sidecar is validated first). TensorRT and pycuda are imported only then.
"""

from __future__ import annotations

import os
from typing import Any

from edge.backends.base import Backend, TensorSpec
from edge.errors import ModelError

ENGINE_SUFFIXES = (".engine", ".plan")


def open_backend(path: str, device: str = "auto", **options: Any) -> Backend:
    """Open `path` with the backend its suffix names. `device`: "cpu", "cuda" or "auto"."""
    if not os.path.isfile(path):
        raise ModelError(f"{path}: model file not found")
    suffix = os.path.splitext(path)[1].lower()
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
