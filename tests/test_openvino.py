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
    import dataclasses

    import onnx

    from export.onnx_export import save, set_metadata

    proto = onnx.load(onnx_model)
    with OrtBackend(onnx_model, threads=1) as ort:
        set_metadata(proto, dataclasses.replace(ort.info, decoder={"peak_threshold": 0.2}))
    path = str(tmp_path / "m.fp32.onnx")
    save(proto, path)
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


def test_errors_are_one_line(onnx_model, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="OpenVINO cannot read"):
        OpenVinoBackend(str(broken), cache_dir=str(tmp_path))
    with pytest.raises(ModelError, match="on the CPU"):
        OpenVinoBackend(onnx_model, device="cuda", cache_dir=str(tmp_path))
    with pytest.raises(ModelError, match="backend must be one of"):
        open_backend(onnx_model, backend="tflite")
