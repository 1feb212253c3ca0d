"""ONNX Runtime backend: the CPU default everywhere, and CUDA where onnxruntime-gpu is.

After creating the session it checks which providers ONNX Runtime actually loaded: a CUDA
provider that is listed but cannot load its libraries silently falls back to the CPU in ONNX
Runtime; here that is reported (a warning, or an error when the GPU was required).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, List

import numpy as np

from edge.backends.base import Backend, TensorSpec
from edge.errors import ModelError
from edge.modelinfo import ModelInfo

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class CpuFallbackWarning(UserWarning):
    """ONNX Runtime was asked for the GPU but runs on the CPU."""


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise ModelError(f"ONNX Runtime is not installed ({err}); pip install 'bkpose[ort]'") from None
    return onnxruntime


class OrtBackend(Backend):
    """An ONNX model in ONNX Runtime. `device`: "cpu", "cuda" (required) or "auto" (CUDA if it loads)."""

    name = "onnxruntime"

    def __init__(self, path: str, device: str = "cpu", threads: int = 0, device_id: int = 0) -> None:
        super().__init__()
        if device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', found {device!r}")
        ort = _import_ort()
        self.path, self.device_id = path, device_id
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        wanted: List[Any] = [CPU]
        if device in ("cuda", "auto") and CUDA in ort.get_available_providers():
            wanted = [(CUDA, {"device_id": device_id}), CPU]
        elif device == "cuda":
            raise ModelError(
                f"{path}: the CUDA provider is not in this ONNX Runtime build "
                f"({ort.get_available_providers()}); install onnxruntime-gpu instead of onnxruntime"
            )
        try:
            self.session = ort.InferenceSession(path, options, providers=wanted)
        except Exception as err:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            raise ModelError(
                f"{path}: ONNX Runtime cannot load this model ({str(err).splitlines()[0][:200]})"
            ) from None
        self.providers = self.session.get_providers()
        self.on_gpu = CUDA in self.providers
        if device != "cpu" and not self.on_gpu:
            message = f"{path}: ONNX Runtime runs on the CPU (providers {self.providers}), not CUDA"
            if device == "cuda":
                raise ModelError(message + "; check that CUDA and cuDNN libraries match onnxruntime-gpu")
            if CUDA in ort.get_available_providers():
                warnings.warn(message, CpuFallbackWarning, stacklevel=2)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = ModelInfo.from_metadata(meta, path)
        (i,), (o,) = self.session.get_inputs(), self.session.get_outputs()
        for arg in (i, o):
            if arg.type not in _DTYPES:
                raise ModelError(f"{path}: {arg.name} has type {arg.type}; expected float or float16")
        self.input = TensorSpec(i.name, tuple(i.shape), np.dtype(_DTYPES[i.type]))
        self.output = TensorSpec(o.name, tuple(o.shape), np.dtype(_DTYPES[o.type]))

    def infer(self, image: np.ndarray) -> np.ndarray:
        """Host input [N, 3, H, W] to host heatmaps [N, 50, H/4, W/4]."""
        x = self.check_input(image)
        start = time.perf_counter()
        out = self.session.run([self.output.name], {self.input.name: x})[0]
        self.last_timings = {"infer_host_ms": (time.perf_counter() - start) * 1e3}
        return out

    def describe(self) -> dict:
        d = super().describe()
        d["providers"] = list(self.providers)
        return d

    def close(self) -> None:
        self.session = None
