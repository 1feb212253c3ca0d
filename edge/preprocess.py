"""CPU letterbox preprocessing: the definition the CUDA kernel must match, and the no-GPU path.

A BGR uint8 frame (H x W x 3, any size, contiguous or not) becomes the network input
float32 [1, 3, dst_h, dst_w]:

* placement from `edge.geometry.letterbox` (scale to fit, aspect kept, top-left or centred);
* bilinear sampling with the pixel-centre convention of `edge.geometry`: output pixel x samples
  source x_s = (x - pad + 0.5) / s - 0.5, clamped to the frame as OpenCV's INTER_LINEAR does
  (a coordinate left of 0 reads column 0; one at or past the last column reads the last column);
* channels in the model's order (frames are BGR; an RGB model gets them swapped), values
  `(pixel * scale - mean) / std`, padding filled with the model's pad value, normalised the same way.

Two CPU paths compute it. The exact one (a Numba loop, float32 throughout) is the definition the
GPU kernel is held to, to rounding. The default one resizes with OpenCV's `cv2.resize`
(INTER_LINEAR: the same sampling, but 11-bit fixed-point weights rounded to uint8, so it differs
by at most one grey level, as the tests pin) and then normalises with numpy: about 2x faster at
512 (0.76 against 1.47 ms for a 1080p frame on this project's CPU). Without OpenCV the exact path
is used.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
from numba import njit

from edge.errors import FrameError
from edge.geometry import Letterbox
from edge.modelinfo import ModelInfo

FRAME_FORMAT = "a BGR uint8 numpy array of shape (height, width, 3)"


def validate_frame(frame: object) -> np.ndarray:
    """Return `frame` if it is a usable BGR uint8 image, else raise FrameError saying what it is."""
    if frame is None:
        raise FrameError(f"frame is None; expected {FRAME_FORMAT} (did the camera or file return no frame?)")
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame is a {type(frame).__name__}; expected {FRAME_FORMAT}")
    if frame.dtype != np.uint8:
        raise FrameError(
            f"frame has dtype {frame.dtype}; expected {FRAME_FORMAT} "
            "(scale 16-bit or float images to 0..255 and convert with .astype(np.uint8))"
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        hint = ""
        if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
            hint = " (grayscale: convert with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))"
        elif frame.ndim == 3 and frame.shape[2] == 4:
            hint = " (BGRA: convert with cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR))"
        raise FrameError(f"frame has shape {frame.shape}; expected {FRAME_FORMAT}{hint}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameError(f"frame is empty (shape {frame.shape}); expected {FRAME_FORMAT}")
    return frame


def normalization_constants(info: ModelInfo) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output channel: source channel index, multiplier, offset and the normalised pad value.

    `out[c] = src[..., source[c]] * mul[c] + add[c]`; shared with the GPU kernel so both agree.
    """
    source = np.array([0, 1, 2] if info.channel_order == "BGR" else [2, 1, 0], dtype=np.int32)
    std = np.asarray(info.std, dtype=np.float64)
    mean = np.asarray(info.mean, dtype=np.float64)
    mul = (info.scale / std).astype(np.float32)
    add = (-mean / std).astype(np.float32)
    pad = (info.pad_value * mul + add).astype(np.float32)
    return source, mul, add, pad


def sample_positions(src_size: int, resized: int) -> Tuple[np.ndarray, np.ndarray]:
    """For each output column (or row) of the resized area: first source index and weight of the next.

    OpenCV's INTER_LINEAR clamping: a position left of 0 reads index 0 with weight 0, a position at
    or past the last index reads the last index with weight 0.
    """
    inv = np.float32(src_size / resized)
    pos = (np.arange(resized, dtype=np.float32) + np.float32(0.5)) * inv - np.float32(0.5)
    first = np.floor(pos).astype(np.int32)
    weight = (pos - first).astype(np.float32)
    low = first < 0
    first[low], weight[low] = 0, 0.0
    high = first >= src_size - 1
    first[high], weight[high] = src_size - 1, 0.0
    return first, weight


@njit(cache=True, nogil=True)
def _letterbox_bilinear(src, out, x0, wx, y0, wy, pad_left, pad_top, source, mul, add, pad):
    """Write out[c, y, x] for the whole input; `src` is uint8 [H, W, 3] with any strides."""
    height, width = out.shape[1], out.shape[2]
    rw, rh = x0.shape[0], y0.shape[0]
    sw, sh = src.shape[1], src.shape[0]
    for c in range(3):
        sc = source[c]
        m = mul[c]
        a = add[c]
        for y in range(height):
            ry = y - pad_top
            if ry < 0 or ry >= rh:
                for x in range(width):
                    out[c, y, x] = pad[c]
                continue
            ya = y0[ry]
            yb = min(ya + 1, sh - 1)
            fy = wy[ry]
            for x in range(width):
                rx = x - pad_left
                if rx < 0 or rx >= rw:
                    out[c, y, x] = pad[c]
                    continue
                xa = x0[rx]
                xb = min(xa + 1, sw - 1)
                fx = wx[rx]
                top = np.float32(src[ya, xa, sc]) + fx * (
                    np.float32(src[ya, xb, sc]) - np.float32(src[ya, xa, sc])
                )
                bottom = np.float32(src[yb, xa, sc]) + fx * (
                    np.float32(src[yb, xb, sc]) - np.float32(src[yb, xa, sc])
                )
                out[c, y, x] = (top + fy * (bottom - top)) * m + a


def _opencv() -> Any:
    try:
        import cv2
    except ImportError:
        return None
    return cv2


class CpuPreprocessor:
    """Letterbox frames into a reusable float32 [1, 3, H, W] buffer (no allocation per frame).

    `exact`: the float32 Numba path the GPU kernel matches; otherwise OpenCV's resize where OpenCV
    is installed (within one grey level of it, faster). The exact path's column and row sampling
    tables depend only on the frame size, so they are cached per size.
    """

    def __init__(self, info: Optional[ModelInfo] = None, exact: bool = False) -> None:
        self.info = info or ModelInfo()
        self._source, self._mul, self._add, self._pad = normalization_constants(self.info)
        self._tables: Optional[Tuple[Tuple[int, int], Letterbox, Tuple[np.ndarray, ...]]] = None
        self._cv2 = None if exact else _opencv()
        self.exact = self._cv2 is None

    def _tables_for(self, width: int, height: int) -> Tuple[Letterbox, Tuple[np.ndarray, ...]]:
        if self._tables is None or self._tables[0] != (width, height):
            lb = self.info.letterbox(width, height)
            x0, wx = sample_positions(width, lb.resized_w)
            y0, wy = sample_positions(height, lb.resized_h)
            self._tables = ((width, height), lb, (x0, wx, y0, wy))
        return self._tables[1], self._tables[2]

    def new_input(self, batch: int = 1) -> np.ndarray:
        return np.empty((batch, 3, self.info.input_height, self.info.input_width), dtype=np.float32)

    def __call__(self, frame: np.ndarray, out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Letterbox]:
        """Letterbox `frame` into `out` ([1,3,H,W] or [3,H,W] float32; allocated when None)."""
        frame = validate_frame(frame)
        if out is None:
            out = self.new_input()
        target = out[0] if out.ndim == 4 else out
        expected = (3, self.info.input_height, self.info.input_width)
        if target.shape != expected or target.dtype != np.float32:
            raise ValueError(f"output buffer must be float32 {expected} (optionally with a batch axis), "
                             f"found {target.dtype} {out.shape}")  # fmt: skip
        if self._cv2 is not None:
            return out, self._letterbox_opencv(frame, target)
        lb, (x0, wx, y0, wy) = self._tables_for(frame.shape[1], frame.shape[0])
        _letterbox_bilinear(frame, target, x0, wx, y0, wy, lb.pad_left, lb.pad_top,
                            self._source, self._mul, self._add, self._pad)  # fmt: skip
        return out, lb

    def _letterbox_opencv(self, frame: np.ndarray, target: np.ndarray) -> Letterbox:
        """cv2.resize into a uint8 image, then per channel: pad value, then pixel * mul + add."""
        lb = self.info.letterbox(frame.shape[1], frame.shape[0])
        resized = _resize(self._cv2, frame, lb)
        rows, cols = resized_area(lb)
        for c in range(3):
            target[c].fill(self._pad[c])
            area = target[c, rows, cols]
            np.multiply(resized[:, :, self._source[c]], self._mul[c], out=area, dtype=np.float32)
            area += self._add[c]
        return lb


def _resize(cv2: Any, frame: np.ndarray, lb: Letterbox) -> np.ndarray:
    return cv2.resize(frame, (lb.resized_w, lb.resized_h), interpolation=cv2.INTER_LINEAR)


def resized_area(lb: Letterbox) -> Tuple[slice, slice]:
    """The rows and columns of the network input that the resized frame covers."""
    return slice(lb.pad_top, lb.pad_top + lb.resized_h), slice(lb.pad_left, lb.pad_left + lb.resized_w)


class Uint8Letterbox:
    """Letterbox frames into a reusable uint8 [N, H, W, 3] buffer in the frame's own BGR order and
    pixel values, for a runtime that converts, reorders and normalises inside its graph (OpenVINO's
    preprocessing): the same `cv2.resize` pixels as `CpuPreprocessor`'s default path, a quarter of
    the bytes, and no per-pixel arithmetic in Python. The padding is written only when a slot's
    letterbox changes (a new frame size), since frames of one size never touch it.
    Needs OpenCV and a whole-number pad value (`usable`)."""

    def __init__(self, info: ModelInfo) -> None:
        self.info = info
        self._cv2 = _opencv()
        self._pad = int(info.pad_value)
        self._buffer = np.empty((0, info.input_height, info.input_width, 3), np.uint8)
        self._placed: list = []  # the letterbox each slot holds, or None

    @staticmethod
    def usable(info: ModelInfo) -> bool:
        return _opencv() is not None and float(info.pad_value).is_integer()

    def __call__(self, frames: Any) -> Tuple[np.ndarray, list]:
        """Frames into slots 0..len-1: the buffer (owned here, overwritten by the next call) and
        each frame's letterbox."""
        if len(frames) != self._buffer.shape[0]:
            self._buffer = np.empty((len(frames), *self._buffer.shape[1:]), np.uint8)
            self._placed = [None] * len(frames)
        boxes = []
        for i, frame in enumerate(frames):
            frame = validate_frame(frame)
            lb = self.info.letterbox(frame.shape[1], frame.shape[0])
            if self._placed[i] != lb:
                self._buffer[i].fill(self._pad)
                self._placed[i] = lb
            rows, cols = resized_area(lb)
            self._buffer[i, rows, cols] = _resize(self._cv2, frame, lb)
            boxes.append(lb)
        return self._buffer, boxes


def preprocess(
    frame: np.ndarray, info: Optional[ModelInfo] = None, exact: bool = False
) -> Tuple[np.ndarray, Letterbox]:
    """One-off convenience: letterbox `frame` into a new float32 [1, 3, H, W] array."""
    return CpuPreprocessor(info, exact)(frame)


__all__ = [
    "FRAME_FORMAT",
    "CpuPreprocessor",
    "Uint8Letterbox",
    "preprocess",
    "validate_frame",
]
