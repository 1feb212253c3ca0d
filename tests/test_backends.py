"""Inference backends: ONNX Runtime end to end, TensorRT pieces that need no GPU, and INT8 Q/DQ."""

import json
import types
import warnings

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edge.backends import open_backend  # noqa: E402
from edge.backends.ort import OrtBackend  # noqa: E402
from edge.backends.sidecar import check_sidecar, make_sidecar, read_sidecar, sidecar_path  # noqa: E402
from edge.errors import ModelError  # noqa: E402
from edge.modelinfo import ModelInfo  # noqa: E402
from export import cli  # noqa: E402
from export.build import BuildError, plan_build  # noqa: E402
from export.int8_sensitivity import sensitivity, worst_nodes  # noqa: E402
from export.parity import image_files  # noqa: E402
from export.quantize import CalibrationError, calibration_files, quantize_qdq  # noqa: E402
from export.trt_compat import tensorrt85_problems  # noqa: E402

STEM = "bkpose-random-s2"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("engines")
    args = cli.parse_args([
        "--random-init", "--seed", "2", "--out", str(out), "--no-fp16", "--quiet", "--int8",
        "--calib-images", str(shared_data / "images" / "coco_val2017_dev538"), "--calib-limit", "40",
        "--images", str(shared_data / "images" / "coco_train2017_mini"),
    ])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "calibrating on 40 images" is expected here
        manifest = cli.run(args)
    return out, manifest


def test_onnx_opens_in_onnxruntime_with_its_metadata(exported):
    out, _ = exported
    with open_backend(str(out / f"{STEM}.fp32.onnx"), device="cpu", backend="ort", threads=1) as backend:
        assert isinstance(backend, OrtBackend) and not backend.on_gpu
        assert backend.info.precision == "fp32" and backend.info.trained is False
        assert (backend.input.name, backend.input.shape) == ("image", (1, 3, 512, 512))
        assert (backend.output.name, backend.output.shape) == ("heatmaps", (1, 50, 128, 128))
        x = np.random.default_rng(0).random((1, 3, 512, 512), dtype=np.float32)
        y = backend.infer(x)
        assert y.shape == (1, 50, 128, 128) and y.dtype == np.float32
        raw = ort.InferenceSession(str(out / f"{STEM}.fp32.onnx"), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(y, raw.run(None, {"image": x})[0], rtol=0, atol=1e-5)
        assert backend.last_timings["infer_host_ms"] > 0
        with pytest.raises(ValueError, match=r"input must have shape \(1, 3, 512, 512\)"):
            backend.infer(np.zeros((1, 3, 256, 256), np.float32))


def test_gpu_request_without_a_gpu_build_is_refused_clearly(exported):
    out, _ = exported
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has the CUDA provider")
    with pytest.raises(ModelError, match="onnxruntime-gpu"):
        OrtBackend(str(out / f"{STEM}.fp32.onnx"), device="cuda")
    assert not OrtBackend(str(out / f"{STEM}.fp32.onnx"), device="auto").on_gpu


def test_bad_model_paths(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        open_backend(str(tmp_path / "missing.onnx"))
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match="unknown model type"):
        open_backend(str(tmp_path / "model.pt"))
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="ONNX Runtime cannot load"):
        open_backend(str(tmp_path / "broken.onnx"), device="cpu", backend="ort")
    (tmp_path / "model.engine").write_bytes(b"x")
    with pytest.raises(ModelError, match="GPU only"):
        open_backend(str(tmp_path / "model.engine"), device="cpu")


def test_int8_file_is_symmetric_qdq_that_tensorrt85_parses(exported):
    out, manifest = exported
    path = str(out / f"{STEM}.int8.onnx")
    assert tensorrt85_problems(path) == []
    proto = onnx.load(path)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    inits = {i.name: i for i in proto.graph.initializer}
    qs = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert len(qs) > 200
    for node in qs:
        zero = onnx.numpy_helper.to_array(inits[node.input[2]])
        assert zero.dtype == np.int8 and not zero.any()
    conv_weights = [n for n in proto.graph.node if n.op_type == "Conv"]
    producers = {o: n.op_type for n in proto.graph.node for o in n.output}
    assert all(producers.get(n.input[1]) == "DequantizeLinear" for n in conv_weights)  # weights quantized
    # the heatmaps come out of the last convolution in float, not through another Q/DQ pair
    assert producers[proto.graph.output[0].name] == "Conv"
    last = next(n for n in proto.graph.node if proto.graph.output[0].name in n.output)
    assert producers[last.input[0]] == "DequantizeLinear"  # its input still INT8
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ModelInfo.from_metadata(meta).precision == "int8"
    files = {f["precision"] for f in manifest["files"]}
    assert files == {"fp32", "int8"}


def test_int8_quality_report_is_in_the_manifest(exported):
    out, manifest = exported
    report = manifest["parity"]["int8_vs_fp32"]
    assert report["calibration"]["images"] == 40 and report["calibration"]["method"] == "minmax"
    quality = report["quality"]
    assert quality["images"] == 28
    assert 0 < quality["heatmaps"]["max_abs"] < 10
    assert quality["poses"]["reference_people"] >= 0 and "mean_oks" in quality["poses"]
    on_disk = json.loads((out / f"{STEM}.manifest.json").read_text())
    assert on_disk["parity"]["int8_vs_fp32"]["quality"] == quality
    with open_backend(str(out / f"{STEM}.int8.onnx"), device="cpu") as backend:
        assert backend.info.precision == "int8"
        assert np.isfinite(backend.infer(np.full((1, 3, 512, 512), 0.5, np.float32))).all()


def test_sensitivity_finds_layers_that_keep_float_leaves_unquantized(exported, shared_data, tmp_path):
    import onnx

    out, _ = exported
    fp32, int8 = str(out / f"{STEM}.fp32.onnx"), str(out / f"{STEM}.int8.onnx")
    photos = image_files(str(shared_data / "images" / "coco_train2017_mini"), 2)
    with OrtBackend(fp32, device="cpu") as backend:
        info = backend.info
    rows = sensitivity(fp32, int8, photos, info)
    graph = onnx.load(fp32).graph
    convs = {n.name for n in graph.node if n.op_type == "Conv"}
    assert len(rows) > 10 and all(set(r["consumers"]) <= {n.name for n in graph.node} for r in rows)
    sqnr = [r["qdq_sqnr_db"] for r in rows]
    assert sqnr == sorted(sqnr) and all(np.isfinite(sqnr))
    keep = [n for n in worst_nodes(rows, 12) if n in convs][:2]
    assert len(keep) == 2
    mixed = str(tmp_path / "mixed.int8.onnx")
    files = calibration_files(str(shared_data / "images" / "coco_val2017_dev538"), 32, force=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = quantize_qdq(fp32, mixed, info, files, keep_float=keep)
    assert done["kept_float"] == keep
    quantized = onnx.load(mixed).graph
    produced_by = {o: n.op_type for n in quantized.node for o in n.output}
    weight_is_int8 = {n.name: produced_by.get(n.input[1]) == "DequantizeLinear"
                      for n in quantized.node if n.op_type == "Conv"}  # fmt: skip
    assert not any(weight_is_int8[n] for n in keep)  # kept in float
    assert sum(weight_is_int8.values()) == len(convs) - len(keep)  # every other one quantized
    with pytest.raises(CalibrationError, match="no node named nope"):
        quantize_qdq(fp32, mixed, info, files, keep_float=["nope"])


def test_sensitivity_per_photo_equals_onnxruntimes_ratio_over_all_photos(exported, shared_data, tmp_path):
    """The rows are summed one photo at a time (memory bound at 512); the numbers must be the ones
    ONNX Runtime computes with every photo's activations held together."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        compute_signal_to_quantization_noice_ratio,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    from export.quantize import calibration_reader

    def in_float64(x, y):  # ONNX Runtime's ratio, its norms taken in float64 as the streamed sums are
        return compute_signal_to_quantization_noice_ratio([a.astype(np.float64) for a in x],
                                                          [b.astype(np.float64) for b in y])  # fmt: skip

    out, _ = exported
    fp32, int8 = str(out / f"{STEM}.fp32.onnx"), str(out / f"{STEM}.int8.onnx")
    photos = image_files(str(shared_data / "images" / "coco_train2017_mini"), 3)
    with OrtBackend(fp32, device="cpu") as backend:
        info = backend.info
    rows = {row["tensor"]: row for row in sensitivity(fp32, int8, photos, info)}
    held = {}
    for label, path in (("float", fp32), ("qdq", int8)):
        modify_model_output_intermediate_tensors(path, str(tmp_path / f"{label}.onnx"))
        held[label] = collect_activations(str(tmp_path / f"{label}.onnx"), calibration_reader(photos, info))
    errors = compute_activation_error(create_activation_matching(held["qdq"], held["float"]), in_float64)
    assert len(rows) > 10
    for tensor, row in rows.items():
        assert row["qdq_sqnr_db"] == pytest.approx(errors[tensor]["qdq_err"], abs=1e-3)
        assert row["model_sqnr_db"] == pytest.approx(errors[tensor]["xmodel_err"], abs=1e-3)


def test_calibration_needs_enough_images(tmp_path, shared_data):
    few = shared_data / "images" / "mmpose_tests"
    with pytest.raises(CalibrationError, match="at least 32"):
        calibration_files(str(few), None, force=False)
    with pytest.warns(UserWarning, match="500"):
        assert len(calibration_files(str(few), None, force=True)) > 0
    with pytest.raises(CalibrationError, match="no images"):
        calibration_files(str(tmp_path), None, force=True)


# ---------------------------------------------------------------- engine sidecars
def _sidecar(**changes):
    info = ModelInfo(precision="fp16")
    side = make_sidecar(
        info,
        "8.5.2.2",
        "Xavier",
        "7.2",
        [1, 3, 512, 512],
        "/m/bk.fp32.onnx",
        "ab" * 32,
        300.0,
        True,
        False,
        None,
    )
    side.update(changes)
    return side


def test_sidecar_accepts_the_machine_that_built_it(tmp_path):
    engine = tmp_path / "bk.fp16.engine"
    engine.write_bytes(b"plan")
    with open(sidecar_path(str(engine)), "w") as f:
        json.dump(_sidecar(), f)
    info = check_sidecar(read_sidecar(str(engine)), "8.5.2.2", "Xavier", "7.2", str(engine))
    assert info.precision == "fp16"


@pytest.mark.parametrize(
    "field, here",
    [("tensorrt_version", ("10.3.0", "Xavier", "7.2")), ("gpu_name", ("8.5.2.2", "Orin", "7.2")),
     ("compute_capability", ("8.5.2.2", "Xavier", "8.7"))],
)  # fmt: skip
def test_sidecar_refuses_another_tensorrt_or_gpu_and_says_how_to_rebuild(field, here):
    with pytest.raises(ModelError) as err:
        check_sidecar(_sidecar(), *here, "bk.fp16.engine")
    assert field in str(err.value) and "bkpose-build /m/bk.fp32.onnx --fp16" in str(err.value)


def test_sidecar_refuses_a_stale_engine_and_a_foreign_input_shape(tmp_path):
    from edge.backends.sidecar import check_engine_input
    from edge.files import sha256_of

    onnx = tmp_path / "bk.fp32.onnx"
    onnx.write_bytes(b"the model it was built from")
    here = ("8.5.2.2", "Xavier", "7.2")
    built = _sidecar(onnx=str(onnx), onnx_sha256=sha256_of(str(onnx)))
    check_sidecar(built, *here, "bk.fp16.engine")  # unchanged source: fine
    onnx.write_bytes(b"re-exported weights")
    with pytest.raises(ModelError, match="stale.*changed since"):
        check_sidecar(built, *here, "bk.fp16.engine")
    onnx.unlink()
    check_sidecar(built, *here, "bk.fp16.engine")  # deployed without its ONNX: not checked
    with pytest.raises(ModelError, match="disagrees with the metadata"):
        check_sidecar(_sidecar(input_shape=[1, 3, 256, 256]), *here, "bk.fp16.engine")
    check_engine_input(built, (1, 3, 512, 512), "bk.fp16.engine")
    check_engine_input(_sidecar(input_shape=["batch", 3, 512, 512]), (-1, 3, 512, 512), "bk.fp16.engine")
    with pytest.raises(ModelError, match="belongs to another engine"):
        check_engine_input(built, (1, 3, 384, 384), "bk.fp16.engine")


def test_missing_or_foreign_sidecar(tmp_path):
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(ModelError, match="sidecar .* is missing"):
        read_sidecar(str(engine))
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(ModelError, match="not a bkpose engine sidecar"):
        read_sidecar(str(engine))


# ---------------------------------------------------------------- build flags per TensorRT version
def fake_tensorrt(creation_flags, builder_flags):
    """A recording stand-in for the `tensorrt` module: only the enum members a version has."""
    return types.SimpleNamespace(
        NetworkDefinitionCreationFlag=types.SimpleNamespace(**{f: i for i, f in enumerate(creation_flags)}),
        BuilderFlag=types.SimpleNamespace(**{f: i for i, f in enumerate(builder_flags)}),
    )


TRT85 = fake_tensorrt(["EXPLICIT_BATCH"], ["FP16", "INT8", "GPU_FALLBACK"])
TRT10 = fake_tensorrt(["EXPLICIT_BATCH", "STRONGLY_TYPED"], ["FP16", "INT8", "GPU_FALLBACK"])
TRT11 = fake_tensorrt(["STRONGLY_TYPED"], ["GPU_FALLBACK"])


def test_fp32_file_with_fp16_flag():
    plan = plan_build(TRT85, "fp32", fp16=True, dla_core=None)
    assert (plan.precision, plan.network_flags, plan.builder_flags) == ("fp16", ["EXPLICIT_BATCH"], ["FP16"])
    assert plan_build(TRT10, "fp32", fp16=True, dla_core=None).builder_flags == ["FP16"]
    assert plan_build(TRT85, "fp32", fp16=False, dla_core=None).precision == "fp32"
    with pytest.raises(BuildError, match="build the .fp16.onnx"):
        plan_build(TRT11, "fp32", fp16=True, dla_core=None)


def test_fp16_file_is_strongly_typed_where_possible():
    assert plan_build(TRT85, "fp16", False, None).builder_flags == ["FP16"]
    for trt in (TRT10, TRT11):
        plan = plan_build(trt, "fp16", False, None)
        assert plan.network_flags == ["STRONGLY_TYPED"] and plan.builder_flags == []


def test_qdq_file_builds_int8():
    assert plan_build(TRT85, "int8", False, None).builder_flags == ["INT8", "FP16"]
    assert plan_build(TRT85, "int8", False, None).network_flags == ["EXPLICIT_BATCH"]
    plan11 = plan_build(TRT11, "int8", True, None)
    assert plan11.network_flags == ["STRONGLY_TYPED"] and plan11.builder_flags == [] and plan11.notes


def test_dla_needs_reduced_precision_and_falls_back_to_gpu():
    assert "GPU_FALLBACK" in plan_build(TRT85, "fp32", True, 0).builder_flags
    with pytest.raises(BuildError, match="DLA runs FP16 or INT8"):
        plan_build(TRT85, "fp32", False, 1)


def test_engine_without_tensorrt_says_what_to_install(monkeypatch):
    import builtins

    from edge.backends.trt import require_tensorrt

    real_import = builtins.__import__

    def no_tensorrt(name, *args, **kwargs):
        if name == "tensorrt":
            raise ImportError("No module named 'tensorrt'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorrt)
    with pytest.raises(ModelError, match="TensorRT is not installed.*python3-libnvinfer"):
        require_tensorrt()
