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


@pytest.fixture(scope="module")
def dynamic_engine(tmp_path_factory):
    """A dynamic-batch engine whose optimisation profile is 1..4 (best 2)."""
    from export.cli import export_random

    out = tmp_path_factory.mktemp("trt-dynbatch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_path = export_random(str(out), 6, False, "--dynamic-batch", "--input-size", "256")
    sidecar = _build(onnx_path, out, "--name", "dyn", "--batch", "2", "--max-batch", "4")
    assert sidecar["input_shape"][0] == "1..4"
    return onnx_path, str(out / "dyn.fp32.engine")


def test_dynamic_engine_runs_each_call_at_its_own_batch(dynamic_engine, shared_data):
    """Each frame lands in its own slot and comes back from its own row, at batch 1..4 and past the
    profile (6 frames: a call of 4, then one of 2), as ONNX Runtime sees each frame alone."""
    import cv2

    from edge.backends import open_backend

    onnx_path, engine = dynamic_engine
    photos = sorted((shared_data / "images" / "coco_train2017_mini").glob("*.jpg"))[:6]
    frames = [cv2.imread(str(p)) for p in photos]
    assert len({f.shape for f in frames}) > 1  # different sizes: different letterboxes per slot
    with open_backend(onnx_path, device="cpu") as reference:
        expected = [reference.run(frame) for frame in frames]
    with open_backend(engine) as backend:
        assert backend.max_batch == 4 and backend.input.shape[0] == "batch"
        for count in (1, 3, 4, 2, 6):
            heatmaps, boxes, times = backend.run_batch(frames[:count])
            assert heatmaps.shape[0] == count and len(boxes) == count
            assert "infer_gpu" in times
            for row, box, (want, want_box, _) in zip(heatmaps, boxes, expected):
                assert box == want_box
                np.testing.assert_allclose(row, want, atol=1e-3 * np.abs(want).max())
        x = np.random.default_rng(2).random((3, 3, 256, 256), dtype=np.float32)
        assert backend.infer(x).shape[0] == 3
        with pytest.raises(ValueError, match="1..4"):
            backend.infer(np.zeros((5, 3, 256, 256), np.float32))


def test_stream_many_on_a_dynamic_engine_batches_within_the_profile(dynamic_engine, shared_data):
    import cv2

    from edge.pipeline import PoseEstimator
    from edge.sources import ListSource

    _, engine = dynamic_engine
    photos = sorted((shared_data / "images" / "coco_train2017_mini").glob("*.jpg"))[:6]
    frames = [cv2.imread(str(p)) for p in photos]
    with PoseEstimator(engine) as est:
        assert est.choose_batch(6) in (1, 2, 4)
        assert set(est.batch_trials) == {1, 2, 4}  # no trial beyond the profile
        sources = {f"cam{i}": ListSource([frame] * 3) for i, frame in enumerate(frames)}
        results = list(est.stream_many(sources, batch=6))
    assert sorted(r.stream for r in results) == sorted(f"cam{i}" for i in range(6) for _ in range(3))
    assert max(est.batch_sizes) <= 6
