"""The model the CLIs use when none is named: the shipped weights exported once, again when the
weights change, the untrained model where none ship, and a clear error when export fails."""

import json

import pytest

torch = pytest.importorskip("torch")

from edge.default_model import default_onnx  # noqa: E402
from edge.errors import ModelError  # noqa: E402
from edge.modelinfo import ModelInfo  # noqa: E402
from export.checkpoint import checkpoint_input_size, read_checkpoint  # noqa: E402
from export.model import BKPose  # noqa: E402
from train.ship import shipped  # noqa: E402


def write_weights(path, seed, input_size=None, decoder=None):
    """What `python -m train.ship` writes for a (here untrained) run at input 128."""
    torch.manual_seed(seed)
    state = {"model": BKPose().state_dict(), "args": {"input_size": 128}, "epoch": 3, "step": 30}
    state["best_ap"] = 0.25
    torch.save(shipped(state, input_size, decoder), path)


def manifest_info(onnx):
    manifest = onnx.replace(".fp32.onnx", ".manifest.json")
    with open(manifest) as f:
        return ModelInfo.from_metadata(json.load(f)["metadata"])


def test_shipped_weights_are_fp16_and_keep_the_trained_size(tmp_path):
    path = tmp_path / "w.pth"
    write_weights(path, seed=1)
    loaded = read_checkpoint(str(path))
    assert checkpoint_input_size(loaded) == 128 and loaded["epoch"] == 3
    floats = [t for t in loaded["state_dict"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)


def test_weights_shipped_for_another_size_and_threshold_export_with_them(tmp_path, monkeypatch):
    """The network is fully convolutional: weights trained at 128 can ship to run at 192; the
    decoder constants measured for them travel into the model's metadata and the runtime."""
    from edge.pipeline import PoseEstimator

    weights = tmp_path / "bkpose-test-128.pth"
    measured = {"peak_threshold": 0.2, "min_parts": 6}
    write_weights(weights, seed=1, input_size=192, decoder=measured)
    loaded = read_checkpoint(str(weights))
    assert checkpoint_input_size(loaded) == 192 and loaded["trained_input_size"] == 128
    monkeypatch.setenv("BKPOSE_CHECKPOINT", str(weights))
    monkeypatch.setenv("BKPOSE_ENGINES", str(tmp_path / "engines"))
    onnx = default_onnx()
    info = manifest_info(onnx)
    assert info.input_width == 192 and info.decoder == measured
    with PoseEstimator(onnx, device="cpu", threads=1) as estimator:
        assert estimator.info.decoder == measured  # read back from the ONNX file
        assert estimator.decoder.params.peak_threshold == 0.2 and estimator.decoder.params.min_parts == 6
    state = {"model": {}, "args": {"input_size": 128}, "epoch": 1, "step": 1}
    with pytest.raises(ValueError, match="multiple of 64"):
        shipped(state, 200)
    with pytest.raises(ValueError, match="not a decoder constant"):
        shipped(state, 128, {"peak_treshold": 0.2})
    with pytest.raises(ValueError, match="peak_threshold must be > 0"):
        shipped(state, 128, {"peak_threshold": 0.0})


def test_trained_default_is_exported_once_and_again_when_the_weights_change(tmp_path, monkeypatch):
    weights = tmp_path / "bkpose-test-128.pth"
    write_weights(weights, seed=1)
    monkeypatch.setenv("BKPOSE_CHECKPOINT", str(weights))
    monkeypatch.setenv("BKPOSE_ENGINES", str(tmp_path / "engines"))
    said = []
    onnx = default_onnx(said.append)
    assert onnx == str(tmp_path / "engines" / "bkpose-test-128.fp32.onnx")
    first = manifest_info(onnx)
    assert first.trained and first.input_width == 128 and len(said) == 1
    assert default_onnx(said.append) == onnx and len(said) == 1  # present and current: no export
    write_weights(weights, seed=2)  # new weights under the same name
    assert default_onnx(said.append) == onnx and len(said) == 2
    assert manifest_info(onnx).checkpoint_sha256 != first.checkpoint_sha256


def test_without_shipped_weights_the_untrained_model_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv("BKPOSE_CHECKPOINT", "")
    monkeypatch.setenv("BKPOSE_ENGINES", str(tmp_path))
    said = []
    onnx = default_onnx(said.append)
    assert onnx.endswith("bkpose-random-s0.fp32.onnx") and not manifest_info(onnx).trained
    assert "untrained" in said[0]


def test_a_failed_export_says_why_and_what_to_do(tmp_path, monkeypatch):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setenv("BKPOSE_CHECKPOINT", str(broken))
    monkeypatch.setenv("BKPOSE_ENGINES", str(tmp_path / "engines"))
    with pytest.raises(ModelError, match=r"corrupt checkpoint.*bkpose-export.*--model"):
        default_onnx()
