"""GPU letterbox preprocessing: one fused kernel from a uint8 frame to the engine's input binding.

The kernel (`letterbox.cu`, compiled once per process and context by pycuda's SourceModule, which
caches the binary on disk) does resize, padding, channel order, normalisation and HWC to CHW in
one launch, writing float32 or float16 straight to a device pointer. Frames come from host
memory (copied into a pinned staging buffer, then uploaded asynchronously on the caller's
stream) or are already on the device (`run_device`). Staging and upload buffers grow to the
largest frame seen and are reused, so steady-state frames allocate nothing.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, Optional, Tuple

import numpy as np

from edge.cuda.device import CudaDevice
from edge.geometry import Letterbox
from edge.modelinfo import ModelInfo
from edge.preprocess import normalization_constants, validate_frame

KERNEL_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "letterbox.cu")
BLOCK = (32, 8, 1)
NORM_DTYPE = np.dtype([("source", "<i4", 3), ("mul", "<f4", 3), ("add", "<f4", 3), ("pad", "<f4", 3)])
# src, src_w, src_h, src_pitch, dst, dst_w, dst_h, resized_w, resized_h, pad_left, pad_top, inv_x, inv_y, norm
ARG_TYPES = (
    [np.intp, np.int32, np.int32, np.int32, np.intp] + [np.int32] * 6 + [np.float32, np.float32, NORM_DTYPE]
)

_modules: Dict[Tuple[int, int], Any] = {}
_modules_lock = threading.Lock()


def kernel_source() -> str:
    with open(KERNEL_SOURCE) as f:
        return f.read()


def load_kernels(device: CudaDevice) -> Any:
    """Compile (or fetch from pycuda's on-disk cache) the kernels once per process and device."""
    key = (os.getpid(), device.index)
    with _modules_lock:
        if key not in _modules:
            from pycuda.compiler import SourceModule

            with device.active():
                _modules[key] = SourceModule(kernel_source(), no_extern_c=True, options=["-O3"])
        return _modules[key]


def inverse_scales(lb: Letterbox) -> Tuple[np.float32, np.float32]:
    """Source pixels per resized pixel, rounded to float32 exactly as the CPU reference does."""
    return np.float32(lb.src_w / lb.resized_w), np.float32(lb.src_h / lb.resized_h)


class GpuPreprocessor:
    """Letterbox frames on the GPU into a caller-owned device buffer of the engine's input dtype."""

    def __init__(self, device: CudaDevice, info: Optional[ModelInfo] = None, dtype: Any = np.float32) -> None:
        self.device = device
        self.info = info or ModelInfo()
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float16):
            raise ValueError(f"the kernel writes float32 or float16, not {self.dtype}")
        module = load_kernels(device)
        name = "letterbox_f32" if self.dtype == np.float32 else "letterbox_f16"
        self.kernel = module.get_function(name).prepare(ARG_TYPES)
        source, mul, add, pad = normalization_constants(self.info)
        self.norm = np.zeros((), NORM_DTYPE)
        self.norm["source"], self.norm["mul"], self.norm["add"], self.norm["pad"] = source, mul, add, pad
        self.norm = self.norm[()]  # a numpy void scalar: pycuda passes it by value as the struct
        self._staging: Optional[np.ndarray] = None
        self._upload = None
        self._uploaded: Optional[Any] = None  # event: the last frame's upload and kernel are done
        self._lock = threading.Lock()

    @property
    def input_nbytes(self) -> int:
        return 3 * self.info.input_width * self.info.input_height * self.dtype.itemsize

    def _ensure_capacity(self, nbytes: int) -> None:
        if self._staging is None or self._staging.nbytes < nbytes:
            if self._uploaded is not None:
                self._uploaded.synchronize()  # the old buffers may still be read by queued work
            if self._upload is not None:
                self._upload.free()
            self._staging = self.device.pinned(nbytes, np.uint8)
            self._upload = self.device.alloc(nbytes)

    def __call__(self, frame: np.ndarray, dst: int, stream: Any, batch_index: int = 0) -> Letterbox:
        """Upload a host BGR frame on `stream` and letterbox it into `dst` (device pointer).

        Asynchronous: the result is ready once `stream` reaches this point. Call from a thread with
        the device's context active. The staging buffer is reused, so one GpuPreprocessor serves
        one stream: the next call waits (on an event, not the whole stream) until the previous
        upload has left the staging buffer.
        """
        frame = validate_frame(frame)
        h, w = frame.shape[:2]
        nbytes = h * w * 3
        with self._lock:
            self._ensure_capacity(nbytes)
            assert self._staging is not None and self._upload is not None
            if self._uploaded is not None:
                self._uploaded.synchronize()  # the previous upload may still read the staging buffer
            staging = self._staging[:nbytes].reshape(h, w, 3)
            np.copyto(staging, frame)  # also makes non-contiguous frames contiguous
            self.device.cuda.memcpy_htod_async(self._upload.ptr, staging, stream)
            lb = self.run_device(self._upload.ptr, w, h, w * 3, dst, stream, batch_index)
            self._uploaded = self._uploaded or self.device.event()
            self._uploaded.record(stream)  # after the kernel: both buffers are free once it fires
            return lb

    def run_device(
        self, src: int, width: int, height: int, pitch: int, dst: int, stream: Any, batch_index: int = 0
    ) -> Letterbox:
        """Letterbox a frame already in device memory (uint8 BGR rows of `pitch` bytes) into `dst`."""
        if width < 1 or height < 1 or pitch < width * 3:
            raise ValueError(f"bad device frame: {width}x{height} with a pitch of {pitch} bytes")
        lb = self.info.letterbox(width, height)
        inv_x, inv_y = inverse_scales(lb)
        dst_w, dst_h = self.info.input_width, self.info.input_height
        grid = ((dst_w + BLOCK[0] - 1) // BLOCK[0], (dst_h + BLOCK[1] - 1) // BLOCK[1], 1)
        target = int(dst) + batch_index * self.input_nbytes
        self.kernel.prepared_async_call(
            grid, BLOCK, stream,
            int(src), width, height, pitch, target, dst_w, dst_h,
            lb.resized_w, lb.resized_h, lb.pad_left, lb.pad_top, inv_x, inv_y, self.norm,
        )  # fmt: skip
        return lb

    def close(self) -> None:
        if self._upload is not None:
            self._upload.free()
            self._upload = None
        self._staging = None
