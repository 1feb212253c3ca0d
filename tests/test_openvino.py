"""The OpenVINO backend: the same ONNX files and metadata as ONNX Runtime, the same heatmaps in
f32, bf16 where the CPU has it, a compile cache, one-line errors."""

import numpy as np
import pytest

ov = pytest.importorskip("openvino")

from edge.backends import open_backend  # noqa: E402
from edge.backends.openvino import OpenVinoBackend, cpu_has_bf16  # noqa: E402
from edge.backends.ort import OrtBackend  # noqa: E402
from edge.errors import ModelError  # noqa: E402
from edge.pipeline import PoseEstimator  # noqa: E402
from edge.sources import synthetic_frame  # noqa: E402


@pytest.fixture(scope="module")
def onnx_model(model_files):
    return model_files("random-s1")


def _with_metadata(path, tmp_path, **changes):
    """A copy of the model with these ModelInfo fields changed in its metadata."""
    import dataclasses

    import onnx

    from export.onnx_export import save, set_metadata

    proto = onnx.load(path)
    with OrtBackend(path, threads=1) as ort:
        set_metadata(proto, dataclasses.replace(ort.info, **changes))
    out = str(tmp_path / "changed.fp32.onnx")
    save(proto, out)
    return out


def test_f32_matches_onnx_runtime_with_the_same_metadata(onnx_model, tmp_path):
    x = np.random.default_rng(0).random((1, 3, 512, 512), dtype=np.float32)
    with OrtBackend(onnx_model, threads=1) as ort, OpenVinoBackend(
        onnx_model, threads=1, cache_dir=str(tmp_path)
    ) as ovb:
        assert ovb.info == ort.info and ovb.input == ort.input and ovb.output == ort.output
        np.testing.assert_allclose(ovb.infer(x), ort.infer(x), rtol=0, atol=1e-4)
        described = ovb.describe()
        assert described["backend"] == "openvino" and "f32" in described["inference_precision"]
    assert any(tmp_path.iterdir())  # the compiled model is cached for the next start


def test_the_models_decoder_constants_read_back_as_onnx_runtime_reads_them(onnx_model, tmp_path):
    """OpenVINO hands metadata over as its own runtime-info types: the JSON field must survive."""
    path = _with_metadata(onnx_model, tmp_path, decoder={"peak_threshold": 0.2})
    with OrtBackend(path, threads=1) as ort, OpenVinoBackend(path, threads=1, cache_dir=str(tmp_path)) as ovb:
        assert ovb.info.decoder == ort.info.decoder == {"peak_threshold": 0.2}
        assert ovb.info == ort.info


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16")
def test_bf16_runs_in_bf16_also_when_auto_picks_openvino(onnx_model, tmp_path):
    with open_backend(
        onnx_model, device="cpu", backend="auto", ov_precision="bf16", cache_dir=str(tmp_path)
    ) as b:
        assert isinstance(b, OpenVinoBackend) and "bf16" in b.describe()["inference_precision"]
        y = b.infer(np.full((1, 3, 512, 512), 0.5, np.float32))
        assert y.shape == (1, 50, 128, 128) and np.isfinite(y).all()


def test_the_pipeline_runs_on_it(onnx_model, tmp_path):
    backend = OpenVinoBackend(onnx_model, threads=1, cache_dir=str(tmp_path))
    with PoseEstimator(backend) as estimator:
        poses, timings = estimator.process(synthetic_frame(np.random.default_rng(1)))
        assert timings["infer"] > 0 and poses.keypoints.shape[1:] == (17, 3)


@pytest.mark.parametrize(
    "changes, frames_in",
    [
        ({}, "uint8"),
        ({"channel_order": "RGB", "mean": (0.4, 0.5, 0.6), "std": (0.2, 0.3, 0.4), "pad_value": 0}, "uint8"),
        ({"pad_value": 127.5}, "float32"),  # not a uint8 value: the CPU letterbox's float tensor instead
    ],
)
def test_frames_preprocessed_in_the_graph_give_onnx_runtimes_heatmaps(
    onnx_model, tmp_path, changes, frames_in
):
    """run(frame) letterboxes into uint8 and lets OpenVINO convert, reorder and normalise: the
    heatmaps must be ONNX Runtime's, whose input is the CPU letterbox's float tensor, for every
    frame size in turn (a smaller frame after a larger one must not see the old pixels)."""
    path = _with_metadata(onnx_model, tmp_path, **changes) if changes else onnx_model
    rng = np.random.default_rng(3)
    with OrtBackend(path, threads=1) as ort, OpenVinoBackend(path, threads=1, cache_dir=str(tmp_path)) as ovb:
        assert ovb.describe()["frames_in"].startswith(frames_in)
        for shape in [(720, 1280, 3), (512, 512, 3), (300, 200, 3), (720, 1280, 3)]:
            frame = rng.integers(0, 256, shape, dtype=np.uint8)
            expected, lb, _ = ort.run(frame)
            found, lb_ov, times = ovb.run(frame)
            assert lb_ov == lb and found.shape == expected.shape == (50, 128, 128)
            assert found.flags.c_contiguous and times["preprocess"] > 0
            # (x - mean / scale) / (std / scale) in the graph against x * mul + add: float rounding,
            # grown by the random weights on inputs of a few units (std 0.2)
            np.testing.assert_allclose(found, expected, rtol=0, atol=1e-3)
        batch, boxes, _ = ovb.run_batch([frame])  # the batch path is the same graph
        assert boxes == [lb] and np.allclose(batch[0], found, atol=1e-6)


def test_errors_are_one_line(onnx_model, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="OpenVINO cannot read"):
        OpenVinoBackend(str(broken), cache_dir=str(tmp_path))
    with pytest.raises(ModelError, match="on the CPU"):
        OpenVinoBackend(onnx_model, device="cuda", cache_dir=str(tmp_path))
    with pytest.raises(ModelError, match="backend must be one of"):
        open_backend(onnx_model, backend="tflite")


def test_bf16_rounding_matches_torchs_bfloat16():
    torch = pytest.importorskip("torch")
    from benchmarks.bf16_fidelity import round_to_bf16

    x = np.random.default_rng(2).normal(0, 3, 10000).astype(np.float32)
    x[:4] = [0.0, 1.0, -2.5, 1.00390625]  # the last is a tie: rounds to even (1.0)
    expected = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(round_to_bf16(x), expected)
    assert round_to_bf16(x)[3] == 1.0


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16")
def test_bf16_fidelity_benchmark_scores_every_variant(onnx_model, shared_data, tmp_path):
    import json

    from benchmarks.bf16_fidelity import SPLITS, main

    out = tmp_path / "fidelity.json"
    assert main(["--model", onnx_model, "--photos", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 2 + len(SPLITS)
    assert all(r["mean_oks"] is None or 0.0 <= r["mean_oks"] <= 1.0 for r in rows)
