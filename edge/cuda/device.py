"""The device layer: one GPU's primary CUDA context, buffers, streams and events, on pycuda.

Why the primary context: TensorRT and the CUDA runtime API bind the device's primary context;
a private context (what `pycuda.autoinit` makes) would give TensorRT and this code separate
address spaces, and device pointers would not be shareable between them.

Thread rule: a CUDA context is current per thread. Every thread that calls into this module
(allocations, copies, kernel launches, TensorRT enqueues) does so inside `with device.active():`,
which pushes the shared primary context on entry and pops it on exit; nesting is allowed.
Objects made here may be used from any thread that has the context active, one stream per
pipeline stage, and must be freed (or the `CudaDevice` closed) while the context is alive.

pycuda is imported when a `CudaDevice` is created, never when `edge` is imported.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

from edge.errors import BKPoseError


class CudaUnavailable(BKPoseError, RuntimeError):
    """pycuda is not installed, or no GPU or driver is usable."""


def _driver() -> Any:
    try:
        import pycuda.driver as cuda
    except ImportError as err:
        raise CudaUnavailable(
            f"GPU preprocessing needs pycuda ({err}); install it with pip install 'bkpose[gpu]' "
            "(it compiles against the local CUDA toolkit: nvcc must be on PATH)"
        ) from None
    try:
        cuda.init()
    except cuda.Error as err:
        raise CudaUnavailable(f"the CUDA driver cannot be initialised: {err}") from None
    return cuda


class DeviceBuffer:
    """`nbytes` of device memory (cudaMalloc). `int(buffer)` is the pointer TensorRT takes."""

    def __init__(self, cuda: Any, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        self.allocation = cuda.mem_alloc(max(self.nbytes, 1))

    def __int__(self) -> int:
        return int(self.allocation)

    @property
    def ptr(self) -> int:
        return int(self.allocation)

    def free(self) -> None:
        if self.allocation is not None:
            self.allocation.free()
            self.allocation = None


class CudaDevice:
    """One GPU: its primary context plus factories for buffers, streams and events."""

    def __init__(self, index: int = 0) -> None:
        self.cuda = _driver()
        if self.cuda.Device.count() <= index:
            raise CudaUnavailable(
                f"GPU {index} requested but the driver sees {self.cuda.Device.count()} device(s)"
            )
        self.index = index
        self.device = self.cuda.Device(index)
        self.context = self.device.retain_primary_context()
        self._lock = threading.Lock()
        self._owned: List[DeviceBuffer] = []
        self._closed = False

    # ---------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return str(self.device.name())

    @property
    def compute_capability(self) -> Tuple[int, int]:
        major, minor = self.device.compute_capability()
        return int(major), int(minor)

    # ---------------------------------------------------------------- context
    @contextmanager
    def active(self) -> Iterator[CudaDevice]:
        """Make the shared primary context current in this thread for the block."""
        if self._closed:
            raise CudaUnavailable("this CudaDevice was closed")
        self.context.push()
        try:
            yield self
        finally:
            self.cuda.Context.pop()

    def memory_info(self) -> Tuple[int, int]:
        """(free, total) bytes of device memory."""
        with self.active():
            free, total = self.cuda.mem_get_info()
        return int(free), int(total)

    # ---------------------------------------------------------------- factories (context must be active)
    def alloc(self, nbytes: int) -> DeviceBuffer:
        buffer = DeviceBuffer(self.cuda, nbytes)
        with self._lock:
            self._owned.append(buffer)
        return buffer

    def pinned(self, shape: Any, dtype: Any = np.uint8) -> np.ndarray:
        """Page-locked host array (fast asynchronous copies)."""
        return self.cuda.pagelocked_empty(shape, dtype)

    def stream(self) -> Any:
        return self.cuda.Stream()

    def event(self) -> Any:
        return self.cuda.Event()

    def upload(self, dst: DeviceBuffer, src: np.ndarray, stream: Optional[Any] = None) -> None:
        """Host to device; asynchronous on `stream` when `src` is pinned."""
        if stream is None:
            self.cuda.memcpy_htod(dst.ptr, src)
        else:
            self.cuda.memcpy_htod_async(dst.ptr, src, stream)

    def download(self, dst: np.ndarray, src: Any, stream: Optional[Any] = None) -> None:
        """Device (a DeviceBuffer or int pointer) to host; asynchronous on `stream` when `dst` is pinned."""
        if stream is None:
            self.cuda.memcpy_dtoh(dst, int(src))
        else:
            self.cuda.memcpy_dtoh_async(dst, int(src), stream)

    # ---------------------------------------------------------------- teardown
    def close(self) -> None:
        """Free every buffer made here, then release the primary context (TensorRT objects first)."""
        if self._closed:
            return
        with self.active(), self._lock:
            for buffer in self._owned:
                buffer.free()
            self._owned.clear()
        self.context.detach()
        self._closed = True

    def __enter__(self) -> CudaDevice:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def elapsed_ms(start: Any, end: Any) -> float:
    """Milliseconds between two recorded events (waits for `end`)."""
    end.synchronize()
    return float(start.time_till(end))
