"""OpenVINO backend: the fast CPU path on x86 (the `openvino` extra; wheels for Python 3.9+ on
x86_64 and aarch64 Linux, none for JetPack 5's Python 3.8, so it stays optional).

It reads the same ONNX files as ONNX Runtime, metadata included (OpenVINO keeps ONNX
`metadata_props` in the model's `framework` runtime info), and compiles them for the CPU with a
latency hint, a thread count and a precision hint: `f32`, or `bf16` where the CPU has it. A Q/DQ
INT8 file runs in INT8. Compiled models are cached (`CACHE_DIR`, in the user cache folder), so the
second start skips compilation.

Two layout changes are compiled into the graph with OpenVINO's preprocessing API, because both
cost more where they were (measured on this project's 2-core Zen 5, trained model at 512, f32):
* the heatmaps leave the graph channels-last, and a numpy transposing copy (0.5 ms) gives the
  caller [N, 50, H, W]: the CPU plugin's own NHWC-to-NCHW reorder of 50 channels runs a reference
  kernel, 5.2 ms of a 40 ms inference;
* frames enter as the letterboxed uint8 BGR pixels ([N, H, W, 3], `Uint8Letterbox`); the
  conversion to float, the model's channel order and normalisation run in the graph. This drops
  the CPU letterbox's per-pixel float work.
`infer(x)` keeps the model's own float NCHW input (a second compiled graph, made on first use).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.backends.base import Backend, TensorSpec
from edge.errors import ModelError
from edge.geometry import Letterbox
from edge.modelinfo import ModelInfo
from edge.preprocess import Uint8Letterbox

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
        self._ov = ov = _import_openvino()
        self.path, self.precision_hint = path, precision
        self._core = core = ov.Core()
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
        model = self._read()
        info = model.get_rt_info()
        framework = info["framework"] if "framework" in info else {}  # noqa: SIM401 - an RTMap, no .get
        meta = {k: (v.astype(str) if hasattr(v, "astype") else str(v)) for k, v in framework.items()}
        self.info = ModelInfo.from_metadata(meta, path)
        self.input = self._spec(model.inputs[0])
        self.output = self._spec(model.outputs[0])
        self._config: Dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision != "auto":
            self._config["INFERENCE_PRECISION_HINT"] = precision
        # frames go in as uint8 where the letterbox can be expressed in uint8, else as the CPU
        # letterbox's float tensor through the model's own input
        self._frames = Uint8Letterbox(self.info) if Uint8Letterbox.usable(self.info) else None
        self._tensor_request: Any = None
        self.compiled = self._compile(model, frames_in=self._frames is not None)
        self.load_seconds = time.perf_counter() - started
        self.request = self.compiled.create_infer_request()
        if self._frames is None:
            self._tensor_request = self.request

    def _read(self) -> Any:
        try:
            return self._core.read_model(self.path)
        except Exception as err:  # OpenVINO raises RuntimeError with a long trace
            raise ModelError(f"{self.path}: OpenVINO cannot read this model ({_first_line(err)})") from None

    def _compile(self, model: Any, frames_in: bool) -> Any:
        """The model with channels-last heatmaps out and, for `frames_in`, letterboxed uint8 BGR in."""
        from openvino.preprocess import PrePostProcessor

        ov, info = self._ov, self.info
        ppp = PrePostProcessor(model)
        ppp.output().model().set_layout(ov.Layout("NCHW"))
        ppp.output().tensor().set_layout(ov.Layout("NHWC"))
        if frames_in:
            ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
            ppp.input().model().set_layout(ov.Layout("NCHW"))
            steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
            if info.channel_order != "BGR":
                steps.reverse_channels()
            # (pixel * scale - mean) / std, as (pixel - mean / scale) / (std / scale)
            steps.mean([m / info.scale for m in info.mean]).scale([s / info.scale for s in info.std])
        try:
            return self._core.compile_model(ppp.build(), "CPU", self._config)
        except Exception as err:
            raise ModelError(
                f"{self.path}: OpenVINO cannot compile this model ({_first_line(err)})"
            ) from None

    def _spec(self, port: Any) -> TensorSpec:
        shape = tuple(d.get_length() if d.is_static else "batch" for d in port.get_partial_shape())
        kind = port.get_element_type().get_type_name()
        if kind not in _DTYPES:
            raise ModelError(f"{self.path}: {port.get_any_name()} has type {kind}; expected f32 or f16")
        return TensorSpec(port.get_any_name(), shape, np.dtype(_DTYPES[kind]))

    def _call(self, request: Any, x: np.ndarray) -> np.ndarray:
        """One synchronous inference; the channels-last heatmaps copied into the caller's NCHW array."""
        request.infer({0: x}, share_inputs=True, share_outputs=True)
        nhwc = request.get_output_tensor(0).data
        heatmaps = np.empty((nhwc.shape[0], nhwc.shape[3], nhwc.shape[1], nhwc.shape[2]), self.output.dtype)
        np.copyto(heatmaps, nhwc.transpose(0, 3, 1, 2))
        return heatmaps

    def _letterbox(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox]]:
        if self._frames is None:
            return super()._letterbox(frames)
        return self._frames(frames)

    def _infer_letterboxed(self, host_input: np.ndarray) -> np.ndarray:
        if self._frames is None:
            return super()._infer_letterboxed(host_input)
        return self._call(self.request, host_input)

    def infer(self, image: np.ndarray) -> np.ndarray:
        """Host input [N, 3, H, W] to host heatmaps [N, 50, H/4, W/4] (a copy: the caller's)."""
        x = self.check_input(image)
        if self._tensor_request is None:
            self._tensor_request = self._compile(self._read(), frames_in=False).create_infer_request()
        start = time.perf_counter()
        out = self._call(self._tensor_request, x)
        self.last_timings = {"infer_host_ms": (time.perf_counter() - start) * 1e3}
        return out

    def describe(self) -> dict:
        d = super().describe()
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        d["inference_precision"] = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        d["threads"] = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        d["load_seconds"] = self.load_seconds
        d["frames_in"] = "uint8 BGR NHWC, normalised in the graph" if self._frames else "float32 NCHW"
        return d

    def close(self) -> None:
        self.request = self._tensor_request = None
        self.compiled = None
