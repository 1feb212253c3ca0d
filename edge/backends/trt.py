"""TensorRT backend: one engine, buffers made once, name-based I/O from TensorRT 8.5 to 11.

Only the API present in every supported version is used: `num_io_tensors`, `get_tensor_name`,
`get_tensor_mode`, `get_tensor_shape`, `get_tensor_dtype`, `set_input_shape`,
`set_tensor_address`, `execute_async_v3` (the binding-index API is gone in TensorRT 10).
The engine's `.json` sidecar is checked before deserialising (TensorRT version, GPU, compute
capability). Device input/output buffers and a pinned host output are allocated once and bound
once; `enqueue` runs on the caller's stream with the input already on the device (written there
by the preprocessing kernel), `infer` is the host-to-host convenience around it. An optional CUDA
graph captures the enqueue after a first regular run, where pycuda offers stream capture.
Teardown frees in the order TensorRT needs: graph, context, engine, runtime, then buffers.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edge.backends.base import Backend, TensorSpec
from edge.backends.sidecar import check_sidecar, read_sidecar
from edge.cuda.device import CudaDevice, elapsed_ms
from edge.errors import ModelError


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

    def __init__(
        self, path: str, device: Optional[CudaDevice] = None, batch: int = 1, cuda_graph: bool = False
    ) -> None:
        super().__init__()
        require_tensorrt()
        self.path = path
        self.device = device or CudaDevice(0)
        self._owns_device = device is None
        try:
            self._open(path, batch)
        except BaseException:
            if self._owns_device:
                self.device.close()  # release the context retained for a backend that never opened
            raise
        self._graph: Optional[Any] = None
        self._want_graph = cuda_graph
        self._ran_once = False

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
        if self._graph is not None and stream is self.stream:
            self._graph.launch(stream)
            return
        if not self.context.execute_async_v3(stream.handle):
            raise ModelError(f"{self.path}: TensorRT execution failed (see the TensorRT log above)")
        if self._want_graph and self._ran_once and stream is self.stream and self._graph is None:
            self._capture_graph()
        self._ran_once = True

    def _capture_graph(self) -> None:
        """Capture the enqueue into a CUDA graph (fewer launch overheads), if pycuda can."""
        stream = self.stream
        if not hasattr(stream, "begin_capture"):
            self._want_graph = False
            return
        stream.synchronize()
        try:
            stream.begin_capture()
            self.context.execute_async_v3(stream.handle)
            graph = stream.end_capture()
            self._graph = graph.instantiate() if hasattr(graph, "instantiate") else None
        except Exception:  # capture unsupported for this engine: keep regular enqueues
            self._graph = None
        self._want_graph = False

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
        d.update(
            tensorrt_version=self.sidecar["tensorrt_version"],
            gpu=self.sidecar["gpu_name"],
            cuda_graph=self._graph is not None,
        )
        return d

    def close(self) -> None:
        if getattr(self, "engine", None) is None:
            return
        with self.device.active():
            self.stream.synchronize()
            self._graph = None
            del self.context  # TensorRT objects go before the buffers and the context they use
            self.engine = None
            del self.runtime
            for buffer in (self.input_buffer, self.output_buffer):
                buffer.free()
        if self._owns_device:
            self.device.close()
