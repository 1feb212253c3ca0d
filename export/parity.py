"""Does the exported file compute what the PyTorch model computes? Measured on the same inputs.

Inputs are real photos letterboxed by the runtime's own CPU preprocessing (when a folder is
given), synthetic frames (smooth random scenes, so a fresh machine without data still tests
realistic input statistics) and uniform random tensors. Errors are reported as the largest
absolute difference and that difference relative to the reference's largest magnitude.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from edge.backends.ort import OrtBackend
from edge.modelinfo import ModelInfo
from edge.preprocess import CpuPreprocessor
from edge.sources import synthetic_frame

IMAGE_PATTERNS = ("*.jpg", "*.jpeg", "*.png", "*.bmp")
FP32_TOLERANCE = 1e-4  # max absolute heatmap difference, ONNX Runtime vs PyTorch
FP16_TOLERANCE = 0.05  # max difference relative to the FP32 output range


def image_files(folder: str, limit: Optional[int] = None) -> List[str]:
    """Image files in `folder` (sorted, recursive), at most `limit`."""
    found = sorted(
        {
            f
            for pattern in IMAGE_PATTERNS
            for f in glob.glob(os.path.join(folder, "**", pattern), recursive=True)
        }
    )
    return found[:limit] if limit is not None else found


def parity_inputs(
    info: ModelInfo,
    images: Optional[str] = None,
    photos: int = 4,
    synthetic: int = 2,
    random: int = 2,
    seed: int = 0,
) -> List[Tuple[str, np.ndarray]]:
    """Named float32 [1, 3, H, W] inputs: letterboxed photos, synthetic frames, uniform noise."""
    import cv2

    rng = np.random.default_rng(seed)
    pre = CpuPreprocessor(info)
    out: List[Tuple[str, np.ndarray]] = []
    if images:
        files = image_files(images, photos)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_PATTERNS)}) under {images}")
        for path in files:
            frame = cv2.imread(path, cv2.IMREAD_COLOR)
            if frame is None:
                raise ValueError(f"{path}: OpenCV cannot decode this image")
            out.append((os.path.basename(path), pre(frame)[0]))
    for i in range(synthetic):
        out.append((f"synthetic-{i}", pre(synthetic_frame(rng))[0]))
    for i in range(random):
        shape = (1, 3, info.input_height, info.input_width)
        out.append((f"uniform-{i}", rng.random(shape, dtype=np.float32)))
    return out


def batched(inputs: Sequence[np.ndarray], batch: int) -> List[np.ndarray]:
    """Group [1, ...] inputs into [batch, ...] arrays (the last group is padded by repetition)."""
    groups = []
    for start in range(0, len(inputs), batch):
        chunk = list(inputs[start : start + batch])
        chunk += [chunk[-1]] * (batch - len(chunk))
        groups.append(np.concatenate(chunk, axis=0))
    return groups


def errors(reference: np.ndarray, candidate: np.ndarray) -> Dict[str, float]:
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    peak = float(np.abs(reference).max())
    max_abs = float(diff.max()) if np.isfinite(diff).all() else float("inf")
    return {"max_abs": max_abs, "max_rel": max_abs / peak if peak > 0 else max_abs, "reference_max": peak}


def worst(results: Iterable[Dict[str, float]]) -> Dict[str, float]:
    results = list(results)
    return {
        "max_abs": max(r["max_abs"] for r in results),
        "max_rel": max(r["max_rel"] for r in results),
        "reference_max": max(r["reference_max"] for r in results),
    }


def run_onnx(path: str, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Outputs of an exported file in the runtime's own ONNX Runtime backend (CPU)."""
    with OrtBackend(path, device="cpu") as backend:
        return [backend.infer(x) for x in inputs]
