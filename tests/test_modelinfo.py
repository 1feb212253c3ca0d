"""Model metadata: what export writes is exactly what the runtime reads, and bad metadata is refused."""

import pytest

from edge.errors import ModelError
from edge.layout import BKPOSE_LAYOUT, METADATA_KEY
from edge.modelinfo import ModelInfo


def test_round_trip_keeps_every_field():
    info = ModelInfo(
        channel_order="RGB", pad_value=114.0, letterbox_align="center", precision="int8", trained=True,
        checkpoint_sha256="ab" * 32, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7), extra={"note": "x"},
        decoder={"peak_threshold": 0.2, "max_peaks": 64},
    )  # fmt: skip
    meta = info.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert ModelInfo.from_metadata(meta) == info
    assert ModelInfo.from_metadata(meta).layout == BKPOSE_LAYOUT


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"bkpose.channel_order": "YUV"}, "channel order"),
        ({"bkpose.precision": "int4"}, "precision"),
        ({"bkpose.input_size": "512"}, "malformed"),
        ({"bkpose.normalization": "{}"}, "malformed"),
        ({METADATA_KEY: "{not json"}, "not valid JSON"),
        ({"bkpose.pad_value": "300"}, "pad value"),
        ({"bkpose.decoder": "[0.2]"}, "malformed"),
        ({"bkpose.decoder": '{"peak_threshold": "high"}'}, "decoder constants must be numbers"),
    ],
)
def test_malformed_metadata_is_refused_with_the_source_named(change, expected):
    meta = {**ModelInfo().to_metadata(), **change}
    with pytest.raises(ModelError) as err:
        ModelInfo.from_metadata(meta, "model.onnx")
    assert expected in str(err.value)
    if expected in ("malformed", "not valid JSON"):
        assert "model.onnx" in str(err.value)


def test_files_from_before_decoder_constants_read_with_none():
    meta = ModelInfo(decoder={"peak_threshold": 0.2}).to_metadata()
    del meta["bkpose.decoder"]
    assert ModelInfo.from_metadata(meta).decoder == {}
    assert "bkpose.decoder" not in ModelInfo().to_metadata()


def test_missing_metadata_says_how_to_fix_it():
    meta = ModelInfo().to_metadata()
    del meta["bkpose.channel_order"]
    with pytest.raises(ModelError, match="model.onnx: metadata field 'channel_order' is missing; export"):
        ModelInfo.from_metadata(meta, "model.onnx")
    with pytest.raises(ModelError, match="missing"):
        ModelInfo.from_metadata({}, "model.onnx")


def test_one_naming_rule_for_model_files():
    from edge.modelinfo import parse_variant, variant_path

    path = variant_path("engines", "bkpose", "fp16", ".engine", "dla0")
    assert path == "engines/bkpose.fp16.dla0.engine"
    named = parse_variant(path)
    assert (named.folder, named.stem, named.precision, named.tag, named.suffix) == (
        "engines", "bkpose", "fp16", "dla0", ".engine",
    )  # fmt: skip
    assert named.with_precision("int8") == "engines/bkpose.int8.dla0.engine"
    assert parse_variant("runs/x.y.int8.onnx").stem == "x.y"  # dots in a stem survive
    assert parse_variant("best.pth").precision == ""
    with pytest.raises(ValueError, match="precision"):
        variant_path("e", "s", "fp8")
