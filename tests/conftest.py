"""Shared fixtures and the `cuda` / `tensorrt` markers' skip rules.

A test marked `cuda` runs where pycuda imports and sees a GPU; one marked `tensorrt` runs where
the TensorRT Python package imports and a GPU is present. Elsewhere they skip with the reason.
"""

import functools
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@functools.lru_cache(maxsize=None)
def cuda_unavailable_reason():
    try:
        import pycuda.driver as cuda
    except ImportError as err:
        return f"pycuda is not installed ({err})"
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            return "no NVIDIA GPU visible to the CUDA driver"
    except cuda.Error as err:  # no driver, or no device
        return f"CUDA driver unavailable: {err}"
    return None


@functools.lru_cache(maxsize=None)
def tensorrt_unavailable_reason():
    try:
        import tensorrt
    except ImportError as err:
        return f"TensorRT Python package is not installed ({err})"
    if not hasattr(tensorrt, "Runtime"):
        return "only TensorRT type stubs are installed, not TensorRT"
    return cuda_unavailable_reason()


def pytest_collection_modifyitems(config, items):
    reasons = {"cuda": cuda_unavailable_reason, "tensorrt": tensorrt_unavailable_reason}
    for item in items:
        for marker, reason_of in reasons.items():
            if marker in item.keywords:
                reason = reason_of()
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def shared_data():
    """The real COCO material beside the checkout (../shared/data); tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


# The untrained models tests share, by name: each is exported once per session, on first use.
TINY_MODELS = {
    "random-s1": {"seed": 1},  # FP32 at 512
    "random-s3-fp16": {"seed": 3, "fp16": True},  # FP32 and FP16 beside it
    "random-s5-dynbatch-128": {"seed": 5, "extra": ("--dynamic-batch", "--input-size", "128")},  # batches
}


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """`model_files(name)`: the FP32 file of the TINY_MODELS entry `name`."""
    pytest.importorskip("torch")
    from export.cli import export_random

    made = {}

    def get(name):
        if name not in made:
            spec = TINY_MODELS[name]
            folder = str(tmp_path_factory.mktemp(name))
            made[name] = export_random(folder, spec["seed"], spec.get("fp16", False), *spec.get("extra", ()))
        return made[name]

    return get


@pytest.fixture(scope="session")
def random_model(model_files):
    """The untrained seed-1 BK-Pose as FP32 ONNX at 512."""
    return model_files("random-s1")


@pytest.fixture(scope="session")
def bar_video(tmp_path_factory):
    """Makes real MJPG videos of 320x240 with a bright bar moving `step` px a frame; `label`
    paints the frame index in. Returns the file's path."""
    import cv2
    import numpy as np

    def make(frames: int, step: int, label: bool = False) -> str:
        path = str(tmp_path_factory.mktemp("video") / f"bar-{frames}.avi")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
        for i in range(frames):
            frame = np.full((240, 320, 3), 40, np.uint8)
            cv2.rectangle(frame, (10 + step * i, 60), (30 + step * i, 200), (220, 220, 220), -1)
            if label:
                cv2.putText(frame, str(i), (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
            writer.write(frame)
        writer.release()
        return path

    return make
