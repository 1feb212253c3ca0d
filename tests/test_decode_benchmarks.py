"""The decoder benchmarks on real COCO poses (../shared/data), small slices for CI."""

import numpy as np
import pytest

from benchmarks import decode_accuracy, decode_crowd
from benchmarks.common import BUNDLED_PEOPLE
from benchmarks.reference_decoder import reference_decode
from edge.decode import Decoder
from edge.geometry import letterbox
from edge.targets import render_annotations

# Measured on the first 20 dev538 images (oracle maps): runtime AP 0.951, reference AP 0.931.
AP_FLOOR = 0.90


def test_accuracy_slice_meets_the_floor(shared_data, tmp_path):
    report = decode_accuracy.main(
        ["--limit", "20", "--variants", "clean,false", "--json", str(tmp_path / "a.json")]
    )
    for variant in ("clean", "false"):
        res = report["variants"][variant]
        assert res["runtime"]["coco"]["AP"] >= AP_FLOOR
        assert res["reference"]["coco"]["AP"] >= AP_FLOOR
        assert res["runtime"]["coco"]["AP"] >= res["reference"]["coco"]["AP"] - 0.01
    assert (tmp_path / "a.json").stat().st_size > 0


def test_reference_and_runtime_find_the_same_people(shared_data):
    coco = decode_accuracy.load_coco_keypoints(shared_data / "coco_val2017_person_keypoints_dev538.json")
    decoder = Decoder()
    for im in coco["images"][:8]:
        lb = letterbox(im["width"], im["height"])
        maps = render_annotations(coco["by_image"][im["id"]], lb)
        ours, ref = decoder.decode(maps, lb), reference_decode(maps, lb, fix_refine_swap=True)
        assert abs(len(ours) - len(ref)) <= 1
        for kps in ref.keypoints:
            found = kps[:, 2] > 0
            if not found.any() or not len(ours):
                continue
            err = [np.abs(o[found, :2] - kps[found, :2]).max() for o in ours.keypoints]
            assert min(err) < 3.0  # same person, within the reference's full-resolution rounding


def test_crowd_benchmark_runs(shared_data, tmp_path):
    report = decode_crowd.main(["--frames", "1", "--json", str(tmp_path / "c.json")])
    buckets = report["modes"]["serial"]["buckets"]
    assert [b["people"] for b in buckets] == list(decode_crowd.BUCKETS)
    assert all(b["found_mean"] >= 0.9 * b["people"] for b in buckets)


def test_crowd_benchmark_runs_on_the_bundled_people(tmp_path):
    bundled = str(BUNDLED_PEOPLE)
    report = decode_crowd.main(
        ["--annotations", bundled, "--frames", "1", "--json", str(tmp_path / "c.json")]
    )
    assert report["pool"] == 80


def test_missing_annotation_file_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="annotation file not found"):
        decode_accuracy.main(["--annotations", str(tmp_path / "none.json")])


def test_decoder_sweep_rows_and_recommendation(random_model, shared_data, tmp_path):
    """One model run per photo, every threshold decoded from the same maps (the reference's always
    among them), then each minimum keypoint count at the recommended threshold; a recommendation
    is the highest value keeping the asked share of the reference constants' AP."""
    from benchmarks import decoder_sweep

    report = decoder_sweep.main(
        ["--model", random_model, "--limit", "3", "--thresholds", "0.3", "--min-parts", "5",
         "--json", str(tmp_path / "s.json")]
    )  # fmt: skip
    assert [r["peak_threshold"] for r in report["rows"]] == [0.1, 0.3]
    assert [r["min_parts"] for r in report["rows"]] == [2, 2]
    assert [r["min_parts"] for r in report["min_parts_rows"]] == [2, 5]
    assert report["reference_AP"] == report["rows"][0]["AP"]
    assert report["photos"] == 3 and (tmp_path / "s.json").stat().st_size > 0
    for row in report["rows"] + report["min_parts_rows"]:
        assert row["decode_ms"]["max"] >= row["decode_ms"]["min"] >= 0 and row["people"] >= 0
    # the same maps with more keypoints asked of each person: never more people
    assert report["min_parts_rows"][1]["people"] <= report["min_parts_rows"][0]["people"]

    rows = [
        {"peak_threshold": t, "AP": ap} for t, ap in ((0.1, 0.050), (0.2, 0.049), (0.25, 0.0485), (0.3, 0.04))
    ]
    assert decoder_sweep.recommend(rows, 0.98) == 0.2
    assert decoder_sweep.recommend(rows, 0.95) == 0.25
    assert decoder_sweep.recommend(rows[1:], 0.98) is None  # no reference row to compare with
    parts = [{"min_parts": n, "AP": ap} for n, ap in ((2, 0.0495), (4, 0.0493), (6, 0.0491), (8, 0.045))]
    assert decoder_sweep.recommend(parts, 0.98, key="min_parts", base=0.050) == 6
    assert decoder_sweep.recommend(parts, 0.98, key="min_parts", base=0.060) is None
