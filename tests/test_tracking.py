"""Pose tracking and keypoint smoothing: IDs through crossings and occlusions, no ID reuse, the
One-Euro filter's step and ramp responses."""

import numpy as np
import pytest

from edge.decode.poses import Poses
from edge.smoothing import OneEuro, OneEuroParams
from edge.tracking import PoseTracker, TrackerParams

# A standing person 170 px tall, feet at (0, 0), COCO-17 order (nose ... ankles)
TEMPLATE = np.array([
    [0, -160], [-5, -165], [5, -165], [-10, -162], [10, -162], [-22, -135], [22, -135],
    [-30, -100], [30, -100], [-32, -70], [32, -70], [-14, -80], [14, -80],
    [-15, -40], [15, -40], [-15, 0], [15, 0],
], np.float64)  # fmt: skip
FPS = 30.0


def person(x, y, hidden=()):
    kps = np.ones((17, 3), np.float32)
    kps[:, :2] = TEMPLATE + (x, y)
    kps[list(hidden)] = 0
    return kps


def frame(*people):
    kps = np.stack(people) if people else np.zeros((0, 17, 3), np.float32)
    return Poses(kps.astype(np.float32), np.full(len(kps), 0.9, np.float32))


def ids_of(poses):
    return [int(i) for i in poses.track_ids]


def test_tentative_until_min_hits_then_ids_in_order():
    tracker = PoseTracker(TrackerParams(min_hits=3))
    seen = [ids_of(tracker.update(frame(person(100, 300), person(400, 300)), i / FPS)) for i in range(4)]
    assert seen[:2] == [[-1, -1], [-1, -1]] and seen[2] == [1, 2] and seen[3] == [1, 2]


def test_ids_survive_a_crossing_with_the_far_person_hidden():
    """Two people walk through each other at 90 px/s each; while they overlap, the one behind
    loses most of their keypoints to the one in front."""
    tracker = PoseTracker(TrackerParams(min_hits=2))
    a_ids, b_ids = set(), set()
    for i in range(90):
        ax, bx = 100 + 3 * i, 370 - 3 * i
        overlap = abs(ax - bx) < 40
        a = person(ax, 300)
        b = person(bx, 305, hidden=range(13) if overlap else ())  # b behind a: only legs seen
        out = tracker.update(frame(b, a) if i % 2 else frame(a, b), i / FPS)  # order must not matter
        got = dict(zip(("b", "a") if i % 2 else ("a", "b"), ids_of(out)))
        if i >= 1:
            a_ids.add(got["a"])
            b_ids.add(got["b"])
    assert len(a_ids) == 1 and len(b_ids) == 1 and a_ids | b_ids == {1, 2}


@pytest.mark.parametrize("gap", [1, 5, 15])
def test_a_person_hidden_for_frames_gets_their_id_back_near_the_prediction(gap):
    tracker = PoseTracker(TrackerParams(min_hits=2, max_age_s=1.0))
    t, ids = 0, []
    for i in range(40):
        x = 100 + 4 * i  # 120 px/s
        if 10 <= i < 10 + gap:
            out = tracker.update(frame(person(600, 100)), i / FPS)  # someone else stays in view
            continue
        out = tracker.update(frame(person(x, 300), person(600, 100)), i / FPS)
        ids.append(ids_of(out)[0])
        t = i
    assert t == 39 and set(ids[1:]) == {1}


def test_ids_are_never_reused():
    tracker = PoseTracker(TrackerParams(min_hits=1, max_age_s=0.2))
    assert ids_of(tracker.update(frame(person(100, 300)), 0.0)) == [1]
    assert ids_of(tracker.update(frame(), 0.1)) == []
    assert ids_of(tracker.update(frame(), 0.5)) == []  # track 1 expired
    assert ids_of(tracker.update(frame(person(100, 300)), 0.6)) == [2]  # same place, new person
    assert ids_of(tracker.update(frame(person(100, 300), person(500, 300)), 0.7)) == [2, 3]


def test_dropped_frames_do_not_shorten_max_age():
    """max_age is time: one frame 0.8 s later (the frames between were dropped) still matches."""
    tracker = PoseTracker(TrackerParams(min_hits=1, max_age_s=1.0))
    tracker.update(frame(person(100, 300)), 0.0)
    assert ids_of(tracker.update(frame(person(102, 300)), 0.8)) == [1]


def test_smoothing_keeps_the_raw_keypoints_and_reduces_jitter():
    rng = np.random.default_rng(0)
    smooth, raw = PoseTracker(TrackerParams(min_hits=1)), PoseTracker(TrackerParams(min_hits=1, smooth=False))
    outs, raws = [], []
    for i in range(60):
        noisy = person(300, 300)
        noisy[:, :2] += rng.normal(0, 2.0, (17, 2))
        out = smooth.update(frame(noisy), i / FPS)
        np.testing.assert_array_equal(out.raw_keypoints[0], noisy)
        assert out.smoothed and not raw.update(frame(noisy), i / FPS).smoothed
        outs.append(out.keypoints[0, :, :2].copy())
        raws.append(noisy[:, :2])
    jitter = np.abs(np.diff(outs[10:], axis=0)).mean()
    jitter_raw = np.abs(np.diff(raws[10:], axis=0)).mean()
    assert jitter < jitter_raw / 3


def test_timestamps_must_not_go_back():
    tracker = PoseTracker()
    tracker.update(frame(person(1, 1)), 1.0)
    with pytest.raises(ValueError, match="go back"):
        tracker.update(frame(person(1, 1)), 0.5)


def test_one_euro_step_and_ramp():
    f = OneEuro((1, 2), OneEuroParams(min_cutoff=1.0, beta=0.0))
    out = [f(np.array([[0.0, 0.0]]), 0.0)[0, 0]]
    out += [f(np.array([[10.0, 0.0]]), i / FPS)[0, 0] for i in range(1, 120)]
    step = np.array(out[1:])
    assert 0 < step[0] < 10 * 0.25  # a step is followed gradually ...
    assert np.all(np.diff(step) > 0) and step[-1] > 9.9  # ... monotonically, and reached
    alpha = 1 / (1 + FPS / (2 * np.pi * 1.0))
    assert step[0] == pytest.approx(10 * alpha)  # the first-order low-pass at min_cutoff
    # a ramp at 150 px/s: more beta, less lag
    lags = []
    for beta in (0.0, 0.05):
        g = OneEuro((1, 2), OneEuroParams(min_cutoff=1.0, beta=beta))
        for i in range(90):
            y = g(np.array([[150.0 * i / FPS, 0.0]]), i / FPS)[0, 0]
        lags.append((150.0 * 89 / FPS - y) / (150.0 / FPS))  # in frames
    assert lags[1] < lags[0] / 4 and lags[1] < 1.5


def test_one_euro_restarts_a_point_that_went_missing():
    f = OneEuro((2, 2))
    f(np.zeros((2, 2)), 0.0)
    seen = np.array([True, False])
    f(np.full((2, 2), 5.0), 0.1, seen)
    out = f(np.full((2, 2), 50.0), 0.2)  # point 1 seen again: starts at the new value
    assert out[1, 0] == 50.0 and 0 < out[0, 0] < 50.0
