"""The one interface every inference backend offers (ONNX Runtime, TensorRT).

A backend is opened from a model file, reports its I/O names, shapes and dtypes and the model's
metadata, and runs `infer(host_input) -> host heatmaps`. GPU backends also take input already in
device memory (written there by the preprocessing kernel) and copy the output asynchronously into
pinned host memory on the caller's stream. Each call leaves its stage timings in `last_timings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np

from edge.modelinfo import ModelInfo


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Tuple[Any, ...]  # ints, or a string for a dynamic axis
    dtype: np.dtype


class Backend:
    """Base class: subclasses set `info`, `input`, `output`, `name` and implement `infer`."""

    name = "backend"
    on_gpu = False
    info: ModelInfo
    input: TensorSpec
    output: TensorSpec

    def __init__(self) -> None:
        self.last_timings: Dict[str, float] = {}

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
