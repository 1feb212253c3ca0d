"""OpenVINO backend: the fast CPU path on x86 (the `openvino` extra; wheels for Python 3.9+ on
x86_64 and aarch64 Linux, none for JetPack 5's Python 3.8, so it stays optional).

It reads the same ONNX files as ONNX Runtime, metadata included (OpenVINO keeps ONNX
`metadata_props` in the model's `framework` runtime info), and compiles them for the CPU with a
latency hint, a thread count and a precision hint: `f32`, or `bf16` where the CPU has it. A Q/DQ
INT8 file runs in INT8. Compiled models are cached (`CACHE_DIR`, in the user cache folder), so the
second start skips compilation.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional

import numpy as np

from edge.backends.base import Backend, TensorSpec
from edge.errors import ModelError
from edge.modelinfo import ModelInfo

HINTS = ("auto", "f32", "bf16")
_DTYPES = {"f32": np.float32, "f16": np.float16}


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as err:
        raise ModelError(f"OpenVINO is not installed ({err}); pip install 'bkpose[openvino]'") from None
    return openvino


def _first_line(err: BaseException) -> str:
    """OpenVINO's messages start with "Exception from <source file>" lines: the first other one."""
    lines = [line for line in str(err).strip().splitlines() if line and not line.startswith("Exception from")]
    return (lines or [type(err).__name__])[0][:200]


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def default_cache_dir() -> str:
    from edge.files import user_cache_dir

    return user_cache_dir("openvino")


def cpu_has_bf16() -> bool:
    ov = _import_openvino()
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackend(Backend):
    """An ONNX model compiled by OpenVINO for the CPU. `precision`: "f32", "bf16" (refused where
    the CPU lacks it) or "auto" (OpenVINO's own choice: bf16 on CPUs that have it)."""

    name = "openvino"

    def __init__(
        self,
        path: str,
        device: str = "cpu",
        threads: int = 0,
        precision: str = "f32",
        cache_dir: Optional[str] = None,
    ) -> None:
        super().__init__()
        if device not in ("cpu", "auto"):
            raise ModelError(f"{path}: the OpenVINO backend runs on the CPU here, not {device!r}")
        if precision not in HINTS:
            raise ValueError(f"precision must be one of {HINTS}, found {precision!r}")
        ov = _import_openvino()
        self.path, self.precision_hint = path, precision
        core = ov.Core()
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise ModelError(f"{path}: this CPU has no bf16 support; use precision f32")
        self.cache_dir = cache_dir or default_cache_dir()
        os.makedirs(self.cache_dir, exist_ok=True)
        core.set_property({"CACHE_DIR": self.cache_dir})
        from openvino.frontend import FrontEndManager

        # checked first: OpenVINO would try its other frontends on it, with C++ log lines on stderr
        if not FrontEndManager().load_by_framework("onnx").supported(path):
            raise ModelError(f"{path}: OpenVINO cannot read this model (not an ONNX file)")
        started = time.perf_counter()
        try:
            model = core.read_model(path)
        except Exception as err:  # OpenVINO raises RuntimeError with a long trace
            raise ModelError(f"{path}: OpenVINO cannot read this model ({_first_line(err)})") from None
        info = model.get_rt_info()
        framework = info["framework"] if "framework" in info else {}  # noqa: SIM401 - an RTMap, no .get
        meta = {k: (v.astype(str) if hasattr(v, "astype") else str(v)) for k, v in framework.items()}
        self.info = ModelInfo.from_metadata(meta, path)
        config: Dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as err:
            raise ModelError(f"{path}: OpenVINO cannot compile this model ({_first_line(err)})") from None
        self.load_seconds = time.perf_counter() - started
        self.request = self.compiled.create_infer_request()
        self.input = self._spec(model.inputs[0])
        self.output = self._spec(model.outputs[0])

    def _spec(self, port: Any) -> TensorSpec:
        shape = tuple(d.get_length() if d.is_static else "batch" for d in port.get_partial_shape())
        kind = port.get_element_type().get_type_name()
        if kind not in _DTYPES:
            raise ModelError(f"{self.path}: {port.get_any_name()} has type {kind}; expected f32 or f16")
        return TensorSpec(port.get_any_name(), shape, np.dtype(_DTYPES[kind]))

    def infer(self, image: np.ndarray) -> np.ndarray:
        """Host input [N, 3, H, W] to host heatmaps [N, 50, H/4, W/4] (a copy: the caller's)."""
        x = self.check_input(image)
        start = time.perf_counter()
        self.request.infer({0: x})
        out = np.array(self.request.get_output_tensor(0).data, copy=True)
        self.last_timings = {"infer_host_ms": (time.perf_counter() - start) * 1e3}
        return out

    def describe(self) -> dict:
        d = super().describe()
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        d["inference_precision"] = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        d["threads"] = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        d["load_seconds"] = self.load_seconds
        return d

    def close(self) -> None:
        self.request = None
        self.compiled = None
