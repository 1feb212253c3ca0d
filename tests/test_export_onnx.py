"""bkpose-export end to end: ONNX files, parity, metadata round trip, TensorRT 8.5 rules, FP16."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from edge.layout import BKPOSE_LAYOUT  # noqa: E402
from edge.modelinfo import ModelInfo  # noqa: E402
from export import cli  # noqa: E402
from export.onnx_export import metadata_of  # noqa: E402
from export.parity import errors, parity_inputs, run_onnx  # noqa: E402
from export.trt_compat import CompatibilityError, require_tensorrt85, tensorrt85_problems  # noqa: E402

PHOTOS = "images/coco_train2017_mini"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("engines")
    args = cli.parse_args(
        ["--random-init", "--seed", "5", "--out", str(out), "--images", str(shared_data / PHOTOS), "--quiet"]
    )
    manifest = cli.run(args)
    return out, manifest


def test_export_writes_fp32_fp16_and_manifest(exported):
    out, manifest = exported
    names = {f["precision"]: f["file"] for f in manifest["files"]}
    assert names == {"fp32": "bkpose-random-s5.fp32.onnx", "fp16": "bkpose-random-s5.fp16.onnx"}
    on_disk = json.loads((out / "bkpose-random-s5.manifest.json").read_text())
    assert on_disk["files"] == manifest["files"]
    assert 2.2e6 <= manifest["parameters"] <= 2.6e6 and 3.8 <= manifest["gmacs"] <= 4.4
    parity = manifest["parity"]["fp32_vs_torch"]
    assert parity["max_abs"] <= 1e-4
    assert any(n.endswith(".jpg") for n in parity["inputs"]) and any(
        n.startswith("uniform") for n in parity["inputs"]
    )
    assert manifest["trained"] is False and manifest["seed"] == 5
    assert not [p for p in os.listdir(out) if p.endswith(".part")]


def test_onnx_contract_opset_shapes_and_folded_batchnorm(exported):
    out, _ = exported
    proto = onnx.load(str(out / "bkpose-random-s5.fp32.onnx"))
    onnx.checker.check_model(proto)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and "Identity" not in ops
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert [(i.name, dims(i)) for i in proto.graph.input] == [("image", [1, 3, 512, 512])]
    assert [(o.name, dims(o)) for o in proto.graph.output] == [("heatmaps", [1, 50, 128, 128])]


def test_metadata_round_trips_into_the_runtime(exported):
    out, _ = exported
    for precision in ("fp32", "fp16"):
        path = str(out / f"bkpose-random-s5.{precision}.onnx")
        info = ModelInfo.from_metadata(metadata_of(path), path)
        assert info.layout == BKPOSE_LAYOUT
        assert (info.precision, info.trained, info.channel_order, info.pad_value) == (
            precision,
            False,
            "BGR",
            128.0,
        )
        assert (info.input_width, info.input_height, info.letterbox_align) == (512, 512, "top-left")
        assert info.extra["random_init_seed"] == "5"
        # ONNX Runtime, the default backend, sees the same fields
        meta = (
            ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        )
        assert ModelInfo.from_metadata(meta, path) == info


def test_fp32_parity_holds_on_fresh_inputs(exported):
    """A new seed gives inputs the export never saw; ONNX Runtime still matches PyTorch."""
    import torch

    out, _ = exported
    path = str(out / "bkpose-random-s5.fp32.onnx")
    inputs = [x for _, x in parity_inputs(ModelInfo(), seed=99, synthetic=1, random=1)]
    args = cli.parse_args(["--random-init", "--seed", "5", "--out", str(out)])
    model = cli.build_model(args)[0]
    with torch.no_grad():
        expected = [model(torch.from_numpy(x)).numpy() for x in inputs]
    for e, a in zip(expected, run_onnx(path, inputs)):
        assert errors(e, a)["max_abs"] <= 1e-4


def test_fp16_file_runs_and_stays_within_its_reported_error(exported, shared_data):
    out, manifest = exported
    reported = manifest["parity"]["fp16_vs_fp32"]
    assert 0 < reported["max_rel"] <= 0.05
    proto = onnx.load(str(out / "bkpose-random-s5.fp16.onnx"))
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    init_types = {i.name: i.data_type for i in proto.graph.initializer}
    assert all(init_types[w] == TensorProto.FLOAT16 for w in conv_weights if w in init_types)
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [TensorProto.FLOAT]
    inputs = [
        x
        for _, x in parity_inputs(
            ModelInfo(), str(shared_data / PHOTOS), photos=2, synthetic=1, random=0, seed=3
        )
    ]
    fp32 = run_onnx(str(out / "bkpose-random-s5.fp32.onnx"), inputs)
    fp16 = run_onnx(str(out / "bkpose-random-s5.fp16.onnx"), inputs)
    for a, b in zip(fp32, fp16):
        assert np.isfinite(b).all()
        assert errors(a, b)["max_rel"] <= 1.5 * reported["max_rel"]


def test_exported_files_pass_the_tensorrt85_check(exported):
    out, _ = exported
    for precision in ("fp32", "fp16"):
        assert tensorrt85_problems(str(out / f"bkpose-random-s5.{precision}.onnx")) == []


def test_dynamic_batch_export(tmp_path):
    args = cli.parse_args(
        ["--random-init", "--out", str(tmp_path), "--dynamic-batch", "--no-fp16", "--quiet"]
    )
    manifest = cli.run(args)
    path = str(tmp_path / "bkpose-random-s0-dynbatch.fp32.onnx")
    dim0 = onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch" and manifest["input"]["shape"][0] == "batch"
    assert tensorrt85_problems(path) == []
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": np.zeros((3, 3, 512, 512), np.float32)})[0]
    assert out.shape == (3, 50, 128, 128)
    # the backend contract's batch: several cameras' frames in one model call, each in its slot
    from edge.backends import open_backend

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (h, w, 3), np.uint8) for h, w in ((240, 320), (480, 360), (100, 100))]
    with open_backend(path, device="cpu", threads=1) as backend:
        heatmaps, boxes, times = backend.run_batch(frames)
        assert heatmaps.shape == (3, 50, 128, 128) and len(boxes) == 3 and times["infer"] > 0
        for frame, batched, lb in zip(frames, heatmaps, boxes):
            alone, lb_alone, _ = backend.run(frame)
            assert lb == lb_alone
            np.testing.assert_allclose(batched, alone, atol=1e-4)


def test_failed_parity_fails_the_export_and_removes_the_file(tmp_path, monkeypatch, capsys):
    import export.parity

    monkeypatch.setattr(export.parity, "FP32_TOLERANCE", 0.0)
    code = cli.main(["--random-init", "--out", str(tmp_path), "--no-fp16", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "differs from PyTorch" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.onnx"))


def test_cli_reports_a_bad_checkpoint_in_one_line(tmp_path, capsys):
    bad = tmp_path / "weights.pth"
    bad.write_text("not weights")
    assert cli.main(["--checkpoint", str(bad), "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"bkpose-export: error: {bad}: not a PyTorch checkpoint (neither a zip archive nor a pickle)"
    ]
    out = tmp_path / "new-folder"
    assert cli.main(["--checkpoint", str(bad), "--out", str(out), "--quiet"]) == 2
    assert not out.exists()  # a failed export leaves no empty folder behind


# ---------------------------------------------------------------- the checker on hand-made graphs
def _model(nodes, opset=17, inputs=None, outputs=None, initializers=()):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_checker_accepts_a_plain_graph():
    assert tensorrt85_problems(_model([helper.make_node("Relu", ["x"], ["y"])])) == []


def test_checker_rejects_opset_18():
    problems = tensorrt85_problems(_model([helper.make_node("Relu", ["x"], ["y"])], opset=18))
    assert any("opset 18 > 17" in p for p in problems)
    with pytest.raises(CompatibilityError, match="opset 18"):
        require_tensorrt85(_model([helper.make_node("Relu", ["x"], ["y"])], opset=18))


def test_checker_rejects_an_unsupported_operator():
    nodes = [helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="ln")]
    scale = helper.make_tensor("s", TensorProto.FLOAT, [8], [1.0] * 8)
    problems = tensorrt85_problems(_model(nodes, initializers=[scale]))
    assert problems == ["node ln (LayerNormalization): operator not supported by TensorRT 8.5"]


def test_checker_rejects_dynamic_spatial_axes_int64_outputs_and_cubic_resize():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", 8])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [1, 3, 8, 8])
    resize = helper.make_node("Resize", ["x", "", "sc"], ["r"], mode="cubic", name="up")
    cast = helper.make_node("Cast", ["r"], ["y"], to=TensorProto.INT64)
    scales = helper.make_tensor("sc", TensorProto.FLOAT, [4], [1, 1, 1, 1])
    problems = tensorrt85_problems(_model([resize, cast], inputs=[x], outputs=[y], initializers=[scales]))
    text = " | ".join(problems)
    assert "dynamic axis 2 ('h')" in text and "dynamic axis 0" not in text
    assert "output 'y' is INT64" in text
    assert "Resize mode 'cubic'" in text


def test_checker_rejects_asymmetric_quantization():
    zp = helper.make_tensor("zp", TensorProto.INT8, [], [3])
    sc = helper.make_tensor("sc", TensorProto.FLOAT, [], [0.1])
    q = helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["q"], name="q")
    dq = helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["y"], name="dq")
    problems = tensorrt85_problems(_model([q, dq], initializers=[zp, sc]))
    assert sum("zero point must be 0" in p for p in problems) == 2
