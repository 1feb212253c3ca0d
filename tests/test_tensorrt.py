"""Real TensorRT engines: build from the exported ONNX, run, compare with ONNX Runtime.

Marked `tensorrt`: they run wherever the TensorRT Python package, pycuda and a GPU are present
(a Jetson, a GPU workstation) and skip with the reason elsewhere.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError

pytestmark = pytest.mark.tensorrt

# Tolerances against ONNX Runtime FP32, relative to the heatmap range of the untrained model.
TOLERANCE = {"fp32": 1e-3, "fp16": 0.05, "int8": 0.5}


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory, shared_data):
    from export.cli import export_random

    out = tmp_path_factory.mktemp("trt")
    calibration = str(shared_data / "images" / "coco_val2017_dev538")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_random(str(out), 4, True, "--int8", "--calib-images", calibration, "--calib-limit", "64")
    return out


def _build(onnx_path, out, *extra):
    from export.build import build, parse_args

    return build(
        parse_args(
            [str(onnx_path), "--out", str(out), "--quiet", "--timing-cache", str(out / "t.cache"), *extra]
        )
    )


@pytest.mark.parametrize(
    "variant, flags, precision",
    [("fp32", [], "fp32"), ("fp32", ["--fp16"], "fp16"), ("fp16", [], "fp16"), ("int8", [], "int8")],
)
def test_engine_matches_onnxruntime(onnx_files, variant, flags, precision):
    import tensorrt as trt

    from edge.backends import open_backend

    onnx_path = onnx_files / f"bkpose-random-s4.{variant}.onnx"
    if variant == "fp32" and flags and not hasattr(trt.BuilderFlag, "FP16"):
        pytest.skip("TensorRT 11 has no FP16 flag; the fp16 file covers it")
    sidecar = _build(onnx_path, onnx_files, *flags)
    assert sidecar["precision"] == precision and sidecar["tensorrt_version"] == trt.__version__
    engine = onnx_files / f"bkpose-random-s4.{precision}.engine"
    x = np.random.default_rng(1).random((1, 3, 512, 512), dtype=np.float32)
    with open_backend(str(onnx_files / "bkpose-random-s4.fp32.onnx"), device="cpu") as reference:
        expected = reference.infer(x)
    with open_backend(str(engine)) as backend:
        assert backend.info.precision == precision
        got = backend.infer(x)
        assert set(backend.last_timings) >= {"upload_gpu_ms", "infer_gpu_ms", "download_gpu_ms"}
        # the device path: input already on the GPU, output into pinned memory
        with backend.device.active():
            backend.device.upload(backend.input_buffer, x.astype(backend.input.dtype))
            backend.enqueue()
            out = backend.download()
            backend.stream.synchronize()
        np.testing.assert_array_equal(np.asarray(out), got)
    error = np.abs(got.astype(np.float64) - expected).max() / np.abs(expected).max()
    assert error <= TOLERANCE[precision], error
    assert (onnx_files / "t.cache").stat().st_size > 0


def test_engine_from_another_tensorrt_is_refused(onnx_files):
    from edge.backends import open_backend
    from edge.backends.sidecar import sidecar_path

    _build(onnx_files / "bkpose-random-s4.fp16.onnx", onnx_files, "--name", "stale")
    engine = onnx_files / "stale.fp16.engine"
    side = json.loads(Path(sidecar_path(str(engine))).read_text())
    side["tensorrt_version"] = "8.0.0"
    with open(sidecar_path(str(engine)), "w") as f:
        json.dump(side, f)
    with pytest.raises(ModelError, match="tensorrt_version '8.0.0'.*bkpose-build"):
        open_backend(str(engine))


def test_parser_errors_are_printed(tmp_path, capsys):
    from export.build import main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert main([str(bad), "--out", str(tmp_path), "--quiet"]) == 2
    assert "bkpose-build: error" in capsys.readouterr().err


def test_pose_estimator_on_an_engine_uses_the_gpu_kernel(onnx_files, shared_data):
    import cv2

    from edge.cuda.letterbox import GpuPreprocessor
    from edge.pipeline import PoseEstimator
    from edge.sources import ListSource

    _build(onnx_files / "bkpose-random-s4.fp32.onnx", onnx_files, "--name", "est")
    frames = [
        cv2.imread(str(p)) for p in sorted((shared_data / "images" / "coco_train2017_mini").glob("*.jpg"))[:4]
    ]
    with PoseEstimator(str(onnx_files / "est.fp32.engine")) as gpu, PoseEstimator(
        str(onnx_files / "bkpose-random-s4.fp32.onnx"), device="cpu"
    ) as cpu:
        assert isinstance(gpu.backend.preprocessor, GpuPreprocessor)  # the backend owns its kernel
        gpu.warmup()
        streamed = list(gpu.stream(ListSource(frames)))
        assert [r.index for r in streamed] == [0, 1, 2, 3]
        for frame, result in zip(frames, streamed):
            reference = cpu(frame)
            assert len(result.poses) == len(reference)
            assert {"preprocess_gpu", "infer_gpu", "download_gpu"} <= set(result.timings_ms)
