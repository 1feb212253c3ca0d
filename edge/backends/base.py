"""The one interface every inference backend offers (ONNX Runtime, TensorRT).

A backend is opened from a model file and reports its I/O names, shapes and dtypes and the
model's metadata. The pipeline calls one method, `run(frame)`: a BGR uint8 frame in, heatmaps, the
letterbox that maps them back and stage times (`edge.stages` names) out. `run_batch(frames)` is the
same for several frames (several cameras). How the frame gets into the model is the backend's own:
here, the CPU letterbox into a host buffer and `infer`; TensorRT overrides `_run_frames` with its
CUDA kernel writing each frame into its batch slot, enqueue and download. `infer(host_input)`
stays the host-to-host call for tests and benchmarks of the model alone; it leaves its timings in
`last_timings`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge import stages
from edge.geometry import Letterbox
from edge.modelinfo import ModelInfo

StageTimes = Dict[str, float]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Tuple[Any, ...]  # ints, or a string for a dynamic axis
    dtype: np.dtype


class Backend:
    """Base class: subclasses set `info`, `input`, `output`, `name` and implement `infer`."""

    name = "backend"
    on_gpu = False
    path = ""  # the model file it was opened from
    info: ModelInfo
    input: TensorSpec
    output: TensorSpec
    max_batch: Optional[int] = None  # most frames per call on a dynamic batch axis (None: any)

    def __init__(self) -> None:
        self.last_timings: Dict[str, float] = {}
        self._run_lock = threading.Lock()  # run() reuses buffers: one frame at a time
        self._host_pre: Optional[Any] = None
        self._host_input: Optional[np.ndarray] = None

    # ------------------------------------------------------------------ the pipeline's call
    def run(self, frame: np.ndarray) -> Tuple[np.ndarray, Letterbox, StageTimes]:
        """One BGR uint8 frame -> (heatmaps [C, H/4, W/4], the caller's to keep; the letterbox that
        maps them back to the frame; stage times in ms keyed by `edge.stages` names)."""
        with self._run_lock:
            return self._run(frame)

    def run_batch(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox], StageTimes]:
        """Several frames at once (one per camera): heatmaps [N, C, H/4, W/4], one letterbox each,
        the stage times of the whole batch. One model call per `max_batch` frames where the input's
        batch axis is dynamic, one for exactly the fixed batch, frame by frame otherwise."""
        size = self.call_size(len(frames))
        with self._run_lock:
            parts = [self._run_frames(frames[i : i + size]) for i in range(0, len(frames), size)]
        if len(parts) == 1:
            return parts[0]
        times: StageTimes = {}
        for _, _, t in parts:
            for key, value in t.items():
                times[key] = times.get(key, 0.0) + value
        return np.concatenate([p[0] for p in parts]), [lb for p in parts for lb in p[1]], times

    def call_size(self, frames: int) -> int:
        """How many of `frames` frames one model call takes."""
        batch = self.input.shape[0]
        if isinstance(batch, int):
            return frames if frames == batch else 1
        return max(1, min(frames, self.max_batch or frames))

    def _run(self, frame: np.ndarray) -> Tuple[np.ndarray, Letterbox, StageTimes]:
        heatmaps, (lb,), times = self._run_frames([frame])
        return heatmaps[0], lb, times

    def _run_frames(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox], StageTimes]:
        """One model call on these frames: `_letterbox` them into the host input, then
        `_infer_letterboxed` (GPU backends override this whole method with their device path)."""
        t0 = time.perf_counter()
        host_input, boxes = self._letterbox(frames)
        t1 = time.perf_counter()
        heatmaps = self._infer_letterboxed(host_input)
        t2 = time.perf_counter()
        return heatmaps, boxes, {stages.PREPROCESS: (t1 - t0) * 1e3, stages.INFER: (t2 - t1) * 1e3}

    def _letterbox(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox]]:
        """The CPU letterbox of each frame into its slot of a reused float host buffer."""
        from edge.preprocess import CpuPreprocessor

        if self._host_pre is None:
            self._host_pre = CpuPreprocessor(self.info)
        shape = (len(frames), *(d if isinstance(d, int) else 1 for d in self.input.shape[1:]))
        if self._host_input is None or self._host_input.shape != shape:
            self._host_input = np.zeros(shape, np.float32)
        boxes = [self._host_pre(frame, self._host_input[i : i + 1])[1] for i, frame in enumerate(frames)]
        return self._host_input, boxes

    def _infer_letterboxed(self, host_input: np.ndarray) -> np.ndarray:
        """`_letterbox`'s buffer through the model: `infer`, unless the backend takes another input."""
        return self.infer(host_input)

    def memory(self) -> Optional[Dict[str, float]]:
        """Device memory in use and in total (MiB) for a GPU backend; None on the CPU."""
        return None

    def check_input(self, array: np.ndarray) -> np.ndarray:
        """The input as a C-contiguous array of the model's dtype, or a ValueError naming the mismatch."""
        expected, shape = tuple(self.input.shape), tuple(array.shape)
        batch_ok = len(shape) == len(expected) and (
            not isinstance(expected[0], int) or shape[0] == expected[0]
        )
        if not batch_ok or shape[1:] != expected[1:]:
            raise ValueError(f"{self.name}: input must have shape {expected}, found {shape}")
        return np.ascontiguousarray(array, dtype=self.input.dtype)

    def infer(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        return {
            "backend": self.name,
            "on_gpu": self.on_gpu,
            "input": {
                "name": self.input.name,
                "shape": list(self.input.shape),
                "dtype": str(self.input.dtype),
            },
            "output": {
                "name": self.output.name,
                "shape": list(self.output.shape),
                "dtype": str(self.output.dtype),
            },
            "precision": self.info.precision,
            "trained": self.info.trained,
        }

    def close(self) -> None:
        """Release sessions, engines and buffers; safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
