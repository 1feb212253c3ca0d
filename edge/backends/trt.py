"""TensorRT backend: one engine, buffers made once, name-based I/O from TensorRT 8.5 to 11.

Only the API present in every supported version is used: `num_io_tensors`, `get_tensor_name`,
`get_tensor_mode`, `get_tensor_shape`, `get_tensor_dtype`, `get_tensor_profile_shape`,
`set_input_shape`, `set_tensor_address`, `execute_async_v3` (the binding-index API is gone in
TensorRT 10). The engine's `.json` sidecar is checked before deserialising (TensorRT version, GPU,
compute capability). Device input/output buffers and a pinned host output are allocated once, for
the engine's batch or its profile's largest (`bkpose-build --max-batch`), and bound once; a
dynamic engine's input shape is set again only when a call's batch differs from the last.
`run(frame)` and `run_batch(frames)`, the pipeline's calls, keep the whole device path here: the
fused letterbox kernel uploads each frame and writes it straight into its slot of the input
binding, `enqueue` runs the engine, the heatmaps come back into pinned memory, all on one stream,
timed with CUDA events. `infer` is the host-to-host call around the same engine. Teardown frees in
the order TensorRT needs: context, engine, runtime, then buffers.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

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
        engine_shape = dims_tuple(engine.get_tensor_shape(in_name))
        check_engine_input(self.sidecar, engine_shape, self.path)
        self._dynamic = engine_shape[0] == -1
        rows = engine_shape[0]
        if self._dynamic:  # buffers for the profile's largest batch; each call sets its own
            rows = self.max_batch = dims_tuple(engine.get_tensor_profile_shape(in_name, 0)[2])[0]
            if not 1 <= batch <= rows:
                raise ModelError(f"{self.path}: batch {batch} is outside the engine's profile 1..{rows}")
        self._batch = 0
        in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(in_name)))
        out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(out_name)))
        axis0: Any = "batch" if self._dynamic else rows
        self.input = TensorSpec(in_name, (axis0, *engine_shape[1:]), in_dtype)
        self._set_batch(batch if self._dynamic else rows)
        out_shape = dims_tuple(self.context.get_tensor_shape(out_name))
        self.output = TensorSpec(out_name, (axis0, *out_shape[1:]), out_dtype)
        full_in, full_out = (rows, *engine_shape[1:]), (rows, *out_shape[1:])
        self.input_buffer = self.device.alloc(int(np.prod(full_in)) * in_dtype.itemsize)
        self.output_buffer = self.device.alloc(int(np.prod(full_out)) * out_dtype.itemsize)
        self.host_input = self.device.pinned(full_in, in_dtype)
        self.host_output = self.device.pinned(full_out, out_dtype)
        for name, buffer in ((in_name, self.input_buffer), (out_name, self.output_buffer)):
            if not self.context.set_tensor_address(name, buffer.ptr):
                raise ModelError(f"{self.path}: TensorRT refused the address of {name}")

    def _set_batch(self, batch: int) -> None:
        """Make the next call take `batch` frames (a dynamic engine's input shape, set only when it
        changes; a fixed engine always runs its own batch)."""
        if batch == self._batch or (not self._dynamic and self._batch):
            return
        shape = (batch, *self.input.shape[1:])
        if self._dynamic and not self.context.set_input_shape(self.input.name, shape):
            raise ModelError(
                f"{self.path}: batch {batch} is outside the engine's profile 1..{self.max_batch}"
            )
        self._batch = batch

    @property
    def input_ptr(self) -> int:
        """Device address of the input binding: where the preprocessing kernel writes."""
        return self.input_buffer.ptr

    def enqueue(self, stream: Optional[Any] = None) -> None:
        """Run the engine on `stream` (input already on the device); asynchronous."""
        stream = stream or self.stream
        if not self.context.execute_async_v3(stream.handle):
            raise ModelError(f"{self.path}: TensorRT execution failed (see the TensorRT log above)")

    def _run_frames(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox], StageTimes]:
        """Kernel (each frame into its batch slot) -> engine -> pinned output on one stream; CUDA
        events time each part. `run_batch` hands at most `max_batch` frames to one call."""
        assert self.preprocessor is not None
        stream = self.stream
        t0 = time.perf_counter()
        with self.device.active():
            self._set_batch(len(frames))
            self.start.record(stream)
            boxes = [self.preprocessor(frame, self.input_ptr, stream, i) for i, frame in enumerate(frames)]
            self.after_upload.record(stream)
            t1 = time.perf_counter()
            self.enqueue(stream)
            self.after_infer.record(stream)
            host = self.download(stream)
            self.end.record(stream)
            stream.synchronize()
            heatmaps = np.array(host[: len(frames)])  # the pinned buffer is reused by the next call
            gpu = self.stage_times()
        t2 = time.perf_counter()
        return (
            heatmaps,
            boxes,
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
        rows = self.host_output[: self._batch]
        self.device.download(rows, self.output_buffer, stream or self.stream)
        return rows

    def infer(self, image: np.ndarray) -> np.ndarray:
        """Host input to host heatmaps, with GPU stage times from CUDA events."""
        x = self.check_input(image)
        if self._dynamic and not 1 <= len(x) <= (self.max_batch or 0):
            raise ValueError(f"{self.path}: {len(x)} frames; the engine's profile takes 1..{self.max_batch}")
        with self.device.active():
            host_start = time.perf_counter()
            self._set_batch(len(x))
            rows = self.host_input[: len(x)]
            np.copyto(rows, x)
            self.start.record(self.stream)
            self.device.upload(self.input_buffer, rows, self.stream)
            self.after_upload.record(self.stream)
            self.enqueue(self.stream)
            self.after_infer.record(self.stream)
            self.download(self.stream)
            self.end.record(self.stream)
            self.end.synchronize()
            self.last_timings = self.stage_times()
            self.last_timings["infer_host_ms"] = (time.perf_counter() - host_start) * 1e3
        return np.array(self.host_output[: len(x)])

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
