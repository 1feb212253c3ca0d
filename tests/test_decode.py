import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.decode import Decoder, Poses
from edge.geometry import letterbox
from edge.layout import BKPOSE_LAYOUT, COCO_KEYPOINTS
from edge.targets import coco_to_layout_keypoints, render_heatmaps

# A standing person facing the camera, COCO-17 (x, y) in source pixels: left_* is image right.
PERSON = np.array(
    [
        [320, 100], [330, 90], [310, 90], [342, 96], [298, 96], [360, 150], [280, 150],
        [372, 215], [268, 215], [380, 275], [260, 275], [348, 285], [292, 285],
        [350, 375], [290, 375], [352, 460], [288, 460],
    ],
    np.float64,
)  # fmt: skip


def person(dx=0.0, dy=0.0, scale=1.0):
    kps = np.ones((17, 3))
    kps[:, :2] = PERSON * scale + [dx, dy]
    return kps


@pytest.fixture(scope="module")
def decoder():
    d = Decoder()
    d.warmup()
    return d


def oracle(people_coco, lb):
    people = coco_to_layout_keypoints(np.stack(people_coco))
    people[:, :, :2] = lb.image_to_input(people[:, :, :2])
    return render_heatmaps(people)


def match(found: Poses, truth):
    """Index of the found person closest to `truth` and its max keypoint error in pixels."""
    errors = [np.abs(found.keypoints[i, :, :2] - truth[:, :2]).max() for i in range(len(found))]
    best = int(np.argmin(errors))
    return best, errors[best]


def test_single_person_recovered_within_one_pixel(decoder):
    lb = letterbox(640, 480)
    poses = decoder.decode(oracle([person()], lb), lb)
    assert len(poses) == 1
    _, err = match(poses, person())
    assert err < 1.0
    assert (poses.keypoints[0, :, 2] > 0.5).all()
    assert poses.counters.as_dict() == {"peaks_dropped": 0, "people_dropped": 0, "nonfinite_cells": 0}


def test_two_overlapping_people_and_no_left_right_swap(decoder):
    lb = letterbox(800, 600, align="center")
    a, b = person(40, 20), person(170, 60, scale=0.9)
    poses = decoder.decode(oracle([a, b], lb), lb)
    assert len(poses) == 2
    for truth in (a, b):
        i, err = match(poses, truth)
        assert err < 1.0
        lw, rw = COCO_KEYPOINTS.index("left_wrist"), COCO_KEYPOINTS.index("right_wrist")
        assert poses.keypoints[i, lw, 0] > poses.keypoints[i, rw, 0]  # left wrist stays image-right


def test_empty_maps_give_no_people(decoder):
    poses = decoder.decode(np.zeros((50, 128, 128), np.float32), letterbox(640, 480))
    assert len(poses) == 0 and poses.keypoints.shape == (0, 17, 3)


def test_float16_noncontiguous_and_repeat_runs_agree(decoder):
    lb = letterbox(640, 480)
    maps = oracle([person(), person(200, 10, 0.7)], lb)
    half = maps.astype(np.float16)
    from_half = decoder.decode(half, lb)
    from_upcast = decoder.decode(half.astype(np.float32), lb)
    np.testing.assert_array_equal(from_half.keypoints, from_upcast.keypoints)
    strided = np.zeros((50, 128, 256), np.float32)
    strided[:, :, ::2] = maps
    noncontig = decoder.decode(strided[:, :, ::2], lb)
    first, second = decoder.decode(maps, lb), decoder.decode(maps[None], lb)
    for other in (noncontig, second):
        np.testing.assert_array_equal(first.keypoints, other.keypoints)
        np.testing.assert_array_equal(first.scores, other.scores)


def test_parallel_build_gives_identical_poses(decoder):
    lb = letterbox(1280, 720)
    maps = oracle([person(dx) for dx in range(0, 900, 150)], lb)
    parallel = Decoder(parallel=True)
    a, b = decoder.decode(maps, lb), parallel.decode(maps, lb)
    assert len(a) == 6
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_caller_array_is_not_modified_and_nonfinite_cells_are_counted(decoder):
    lb = letterbox(640, 480)
    maps = oracle([person()], lb)
    maps[31, 5, 5] = np.nan
    maps[0, 7, 7] = np.inf
    maps[49, 0, 0] = np.nan  # auxiliary channels are not decoded, so not counted
    before = maps.copy()
    poses = decoder.decode(maps, lb)
    np.testing.assert_array_equal(maps, before)
    assert poses.counters.nonfinite_cells == 2
    assert len(poses) == 1


def test_capacity_keeps_the_strongest_peaks_and_counts_the_rest():
    d = Decoder(max_peaks=5)
    maps = np.zeros((50, 128, 128), np.float32)
    heights = np.linspace(0.2, 1.0, 20, dtype=np.float32)
    for i, h in enumerate(heights):
        maps[30, 10 + 5 * i, 10] = h
    d.decode(maps, letterbox(512, 512))
    kept = np.sort(d._peaks[0, : d._counts[0], 2])
    np.testing.assert_allclose(kept, heights[-5:])
    assert d._dropped[0] == 15


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["uniform", "constant", "checker", "nan", "inf", "huge", "negative"]),
    value=st.floats(-2, 2, allow_nan=False),
    seed=st.integers(0, 2**16),
)
def test_any_heatmap_decodes_with_bounded_counts(kind, value, seed):
    rng = np.random.default_rng(seed)
    maps = rng.random((50, 128, 128), dtype=np.float32)
    if kind == "constant":
        maps[:] = value
    elif kind == "checker":
        maps[:] = (np.indices((128, 128)).sum(axis=0) % 2) * abs(value)
    elif kind == "nan":
        maps[rng.random(maps.shape) < 0.1] = np.nan
    elif kind == "inf":
        maps[rng.random(maps.shape) < 0.1] = np.inf
    elif kind == "huge":
        maps *= 1e30
    elif kind == "negative":
        maps = -maps
    d = _shared_small_decoder()
    poses = d.decode(maps, letterbox(int(rng.integers(1, 4000)), int(rng.integers(1, 4000))))
    assert len(poses) <= d.params.max_people
    assert poses.keypoints.shape == (len(poses), 17, 3)
    expected_nonfinite = int((~np.isfinite(maps[:48])).sum())
    assert poses.counters.nonfinite_cells == expected_nonfinite
    assert np.isfinite(poses.keypoints).all()


_SMALL = []


def _shared_small_decoder():
    if not _SMALL:
        _SMALL.append(Decoder(max_peaks=20, max_people=10))
    return _SMALL[0]


@pytest.mark.parametrize(
    "maps, message",
    [
        (np.zeros((48, 128, 128), np.float32), r"\[50, H, W\]"),
        (np.zeros((2, 50, 128, 128), np.float32), r"\[50, H, W\]"),
        (np.zeros((50, 128, 128), np.float64), "float32 or float16"),
        (np.zeros((50, 128, 128), np.int32), "float32 or float16"),
        (np.zeros((50, 64, 64), np.float32), "do not match"),
        ([[0.0]], "numpy array"),
    ],
)
def test_bad_heatmaps_raise_value_error(decoder, maps, message):
    with pytest.raises(ValueError, match=message):
        decoder.decode(maps, letterbox(640, 480))


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="refine"):
        Decoder(refine="cubic")
    with pytest.raises(ValueError, match="max_peaks"):
        Decoder(max_peaks=0)
    with pytest.raises(TypeError):
        Decoder(no_such_parameter=1)


def test_coco_results_format(decoder):
    lb = letterbox(640, 480)
    poses = decoder.decode(oracle([person()], lb), lb)
    (res,) = poses.to_coco_results(image_id=7)
    assert res["image_id"] == 7 and res["category_id"] == 1 and len(res["keypoints"]) == 51
    assert res["keypoints"][2::3] == [1] * 17
    json.dumps(res)


def test_warmup_reports_seconds(decoder):
    assert 0 <= decoder.warmup() < 60


def test_layout_constants_used_by_decoder():
    assert Decoder().layout is BKPOSE_LAYOUT
