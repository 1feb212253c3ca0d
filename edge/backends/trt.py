"""TensorRT backend: one engine, buffers made once, name-based I/O from TensorRT 8.5 to 11.

Only the API present in every supported version is used: `num_io_tensors`, `get_tensor_name`,
`get_tensor_mode`, `get_tensor_shape`, `get_tensor_dtype`, `set_input_shape`,
`set_tensor_address`, `execute_async_v3` (the binding-index API is gone in TensorRT 10).
The engine's `.json` sidecar is checked before deserialising (TensorRT version, GPU, compute
capability). Device input/output buffers and a pinned host output are allocated once and bound
once. `run(frame)`, the pipeline's call, keeps the whole device path here: the fused letterbox
kernel uploads the frame and writes straight into the input binding, `enqueue` runs the engine,
the heatmaps come back into pinned memory, all on one stream, timed with CUDA events. `infer` is
the host-to-host call around the same engine. Teardown frees in the order TensorRT needs:
context, engine, runtime, then buffers.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edge import stages
from edge.backends.base import Backend, StageTimes, TensorSpec
from edge.backends.sidecar import check_engine_input, check_sidecar, read_sidecar
from edge.cuda.device import CudaDevice, elapsed_ms
from edge.errors import ModelError
from edge.geometry import Letterbox


def require_tensorrt() -> None:
    """Fail with what to install when TensorRT cannot be imported (modules import it locally)."""
    try:
        import tensorrt
    except ImportError as err:
        raise ModelError(
            f"TensorRT is not installed ({err}): on Jetson it comes with JetPack (python3-libnvinfer); "
            "on x86 pip install tensorrt. Without it, run the .onnx file with ONNX Runtime"
        ) from None
    if not hasattr(tensorrt, "Runtime"):  # e.g. only the type stubs are present
        raise ModelError("the `tensorrt` package found has no Runtime (type stubs only?); install TensorRT")


def dims_tuple(dims: Any) -> Tuple[int, ...]:
    """A TensorRT Dims as a tuple of ints (-1 for a dynamic axis)."""
    return tuple(int(dims[i]) for i in range(len(dims)))


class TensorRTBackend(Backend):
    name = "tensorrt"
    on_gpu = True

    def __init__(self, path: str, device: Optional[CudaDevice] = None, batch: int = 1) -> None:
        super().__init__()
        require_tensorrt()
        self.path = path
        self.device = device or CudaDevice(0)
        self._owns_device = device is None
        self.preprocessor: Optional[Any] = None
        try:
            self._open(path, batch)
            from edge.cuda.letterbox import GpuPreprocessor

            with self.device.active():
                self.preprocessor = GpuPreprocessor(self.device, self.info, self.input.dtype)
        except BaseException:
            self.close()  # buffers, engine and the retained context of a backend that never opened
            raise

    def _open(self, path: str, batch: int) -> None:
        import tensorrt as trt

        cc = "{}.{}".format(*self.device.compute_capability)
        sidecar = read_sidecar(path)
        self.info = check_sidecar(sidecar, trt.__version__, self.device.name, cc, path)
        self.sidecar = sidecar
        self.logger = trt.Logger(trt.Logger.WARNING)
        with self.device.active():
            self.runtime = trt.Runtime(self.logger)
            with open(path, "rb") as f:
                blob = f.read()
            engine = self.runtime.deserialize_cuda_engine(blob)
            if engine is None:
                raise ModelError(f"{path}: TensorRT could not deserialise the engine (truncated or corrupt?)")
            self.engine: Optional[trt.ICudaEngine] = engine
            self.context = engine.create_execution_context()
            self._bind(batch)
            self.stream = self.device.stream()
            self.start, self.after_upload, self.after_infer, self.end = (
                self.device.event() for _ in range(4)
            )

    def _bind(self, batch: int) -> None:
        import tensorrt as trt

        engine = self.engine
        assert engine is not None
        inputs: List[str] = []
        outputs: List[str] = []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            mode = engine.get_tensor_mode(name)
            (inputs if mode == trt.TensorIOMode.INPUT else outputs).append(name)
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{self.path}: expected one input and one output, found {inputs} and {outputs}")
        in_name, out_name = inputs[0], outputs[0]
        in_shape = dims_tuple(engine.get_tensor_shape(in_name))
        check_engine_input(self.sidecar, in_shape, self.path)
        if in_shape[0] == -1:  # dynamic batch: fix it for this context
            in_shape = (batch, *in_shape[1:])
            if not self.context.set_input_shape(in_name, in_shape):
                raise ModelError(f"{self.path}: batch {batch} is outside the engine's optimisation profile")
        out_shape = dims_tuple(self.context.get_tensor_shape(out_name))
        in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(in_name)))
        out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(out_name)))
        self.input = TensorSpec(in_name, in_shape, in_dtype)
        self.output = TensorSpec(out_name, out_shape, out_dtype)
        self.input_buffer = self.device.alloc(int(np.prod(in_shape)) * in_dtype.itemsize)
        self.output_buffer = self.device.alloc(int(np.prod(out_shape)) * out_dtype.itemsize)
        self.host_input = self.device.pinned(in_shape, in_dtype)
        self.host_output = self.device.pinned(out_shape, out_dtype)
        for name, buffer in ((in_name, self.input_buffer), (out_name, self.output_buffer)):
            if not self.context.set_tensor_address(name, buffer.ptr):
                raise ModelError(f"{self.path}: TensorRT refused the address of {name}")

    @property
    def input_ptr(self) -> int:
        """Device address of the input binding: where the preprocessing kernel writes."""
        return self.input_buffer.ptr

    def enqueue(self, stream: Optional[Any] = None) -> None:
        """Run the engine on `stream` (input already on the device); asynchronous."""
        stream = stream or self.stream
        if not self.context.execute_async_v3(stream.handle):
            raise ModelError(f"{self.path}: TensorRT execution failed (see the TensorRT log above)")

    def _run(self, frame: np.ndarray) -> Tuple[np.ndarray, Letterbox, StageTimes]:
        """Kernel -> engine -> pinned output on one stream; CUDA events time each part."""
        assert self.preprocessor is not None
        stream = self.stream
        t0 = time.perf_counter()
        with self.device.active():
            self.start.record(stream)
            lb = self.preprocessor(frame, self.input_ptr, stream)
            self.after_upload.record(stream)
            t1 = time.perf_counter()
            self.enqueue(stream)
            self.after_infer.record(stream)
            host = self.download(stream)
            self.end.record(stream)
            stream.synchronize()
            heatmaps = np.array(host[0])  # the pinned buffer is reused by the next frame
            gpu = self.stage_times()
        t2 = time.perf_counter()
        return (
            heatmaps,
            lb,
            {
                stages.PREPROCESS: (t1 - t0) * 1e3,
                stages.INFER: (t2 - t1) * 1e3,
                stages.PREPROCESS_GPU: gpu["upload_gpu_ms"],  # frame upload + kernel, on this path
                stages.INFER_GPU: gpu["infer_gpu_ms"],
                stages.DOWNLOAD_GPU: gpu["download_gpu_ms"],
            },
        )

    def memory(self) -> Optional[Dict[str, float]]:
        free, total = self.device.memory_info()
        return {"used_mib": (total - free) / 2**20, "total_mib": total / 2**20}

    def download(self, stream: Optional[Any] = None) -> np.ndarray:
        """Queue the output copy into pinned host memory; valid once `stream` synchronises."""
        self.device.download(self.host_output, self.output_buffer, stream or self.stream)
        return self.host_output

    def infer(self, image: np.ndarray) -> np.ndarray:
        """Host input to host heatmaps, with GPU stage times from CUDA events."""
        x = self.check_input(image)
        with self.device.active():
            host_start = time.perf_counter()
            np.copyto(self.host_input, x)
            self.start.record(self.stream)
            self.device.upload(self.input_buffer, self.host_input, self.stream)
            self.after_upload.record(self.stream)
            self.enqueue(self.stream)
            self.after_infer.record(self.stream)
            self.download(self.stream)
            self.end.record(self.stream)
            self.end.synchronize()
            self.last_timings = self.stage_times()
            self.last_timings["infer_host_ms"] = (time.perf_counter() - host_start) * 1e3
        return np.array(self.host_output)

    def stage_times(self) -> Dict[str, float]:
        return {
            "upload_gpu_ms": elapsed_ms(self.start, self.after_upload),
            "infer_gpu_ms": elapsed_ms(self.after_upload, self.after_infer),
            "download_gpu_ms": elapsed_ms(self.after_infer, self.end),
        }

    def describe(self) -> Dict[str, Any]:
        d = super().describe()
        d.update(tensorrt_version=self.sidecar["tensorrt_version"], gpu=self.sidecar["gpu_name"])
        return d

    def close(self) -> None:
        """Safe to call twice, and on a backend whose opening failed part-way."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        with self.device.active():
            if getattr(self, "stream", None) is not None:
                self.stream.synchronize()
            if self.preprocessor is not None:
                self.preprocessor.close()
            for name in ("context", "engine", "runtime"):  # before the buffers and the context they use
                if hasattr(self, name):
                    delattr(self, name)
            for name in ("input_buffer", "output_buffer"):
                buffer = getattr(self, name, None)
                if buffer is not None:
                    buffer.free()
        if self._owns_device:
            self.device.close()
