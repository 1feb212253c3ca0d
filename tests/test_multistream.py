"""Several sources in one run (`PoseEstimator.stream_many`): each result goes to its own stream,
streams take turns, a dead stream does not stop the others, batches go through ONNX Runtime."""

import collections
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
jsonschema = pytest.importorskip("jsonschema")

from edge.pipeline import PoseEstimator  # noqa: E402
from edge.sinks import SCHEMA_PATH, result_record  # noqa: E402
from edge.sources import ListSource, SourceError  # noqa: E402
from edge.tracking import PoseTracker  # noqa: E402

SIZES = {"a": (320, 240), "b": (400, 300), "c": (160, 120)}


def frames(width, height, count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (height, width, 3), np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def estimator(model_files):
    with PoseEstimator(model_files("random-s5-dynbatch-128"), device="cpu", threads=1, backend="ort") as est:
        yield est


@pytest.mark.parametrize("batch", [1, 3])
def test_every_result_belongs_to_its_stream(estimator, batch):
    lengths = {"a": 7, "b": 11, "c": 4}
    sources = {n: ListSource(frames(*SIZES[n], lengths[n], seed=i)) for i, n in enumerate(SIZES)}
    seen = collections.defaultdict(list)
    for result in estimator.stream_many(sources, batch=batch, wait_ms=20):
        assert result.source_size == SIZES[result.stream]  # the frame of that stream, not another's
        seen[result.stream].append(result.index)
    assert {n: seen[n] for n in SIZES} == {n: list(range(lengths[n])) for n in SIZES}  # all, in order
    used = estimator.batch_sizes
    assert sum(size * count for size, count in used.items()) == sum(lengths.values())
    assert max(used) <= batch and (batch == 1 or max(used) > 1)  # batches really formed


def test_run_batch_splits_past_the_backends_largest_batch(estimator):
    """A backend that takes at most 2 frames a call (a TensorRT profile's max) runs 5 frames as
    calls of 2, 2 and 1, each frame in its own row, as it would alone."""
    backend = estimator.backend
    batch = frames(320, 240, 2, seed=7) + frames(160, 120, 3, seed=8)
    alone = [backend.run(frame) for frame in batch]
    backend.max_batch = 2
    try:
        assert [backend.call_size(n) for n in (1, 2, 5)] == [1, 2, 2]
        heatmaps, boxes, _ = backend.run_batch(batch)
    finally:
        backend.max_batch = None
    assert heatmaps.shape[0] == 5 and boxes == [box for _, box, _ in alone]
    for row, (want, _, _) in zip(heatmaps, alone):
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-5)


def test_streams_take_turns(estimator):
    sources = {f"cam{i}": ListSource(frames(160, 120, 12, seed=i)) for i in range(4)}
    order = [r.stream for r in estimator.stream_many(sources, batch=1)]
    for k in range(1, 12):  # in every prefix of 4k results each stream has k, give or take one
        counts = collections.Counter(order[: 4 * k])
        assert all(abs(counts[name] - k) <= 1 for name in sources), (k, counts)


def test_a_dead_stream_does_not_stop_the_others(estimator):
    def dies_after_three():
        yield from frames(160, 120, 3)
        raise SourceError("camera unplugged")

    sources = {"ok1": ListSource(frames(160, 120, 8)), "dead": ListSource(dies_after_three()),
               "ok2": ListSource(frames(160, 120, 8))}  # fmt: skip
    counts = collections.Counter(r.stream for r in estimator.stream_many(sources, batch=2))
    assert counts == {"ok1": 8, "ok2": 8, "dead": 3}


def test_each_stream_has_its_own_stages(estimator):
    trackers = {}

    def stages(name):
        trackers[name] = PoseTracker()
        return [trackers[name]]

    sources = {n: ListSource(frames(160, 120, 5, seed=i)) for i, n in enumerate("xy")}
    results = list(estimator.stream_many(sources, stages=stages))
    assert set(trackers) == {"x", "y"} and trackers["x"] is not trackers["y"]
    assert all(r.poses.track_ids is not None for r in results)
    schema = json.loads(Path(SCHEMA_PATH).read_text())
    for r in results:  # JSON Lines say which stream
        record = result_record(r)
        jsonschema.validate(record, schema)
        assert record["stream"] == r.stream
    with pytest.raises(ValueError, match="at least one source"):
        next(estimator.stream_many({}))


def test_bkpose_run_with_several_sources(model_files, bar_video, tmp_path):
    """Two videos and a sources file in one process: one JSON Lines file with the stream of each
    line, one annotated video per stream, every frame of both."""
    import subprocess
    import sys

    first, second = bar_video(6, 5), bar_video(9, 3)
    listing = tmp_path / "cams.json"
    listing.write_text(json.dumps([{"uri": first, "name": "door"}, {"uri": second, "name": "hall"}]))
    out = subprocess.run(
        [sys.executable, "-m", "edge.cli", "--sources", str(listing), "--model",
         model_files("random-s5-dynbatch-128"), "--threads", "1", "--backend", "ort", "--jsonl",
         str(tmp_path / "all.jsonl"), "--video", str(tmp_path / "v.mp4")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "2 streams (door, hall), batch" in out.stderr
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    per = collections.Counter(line["stream"] for line in lines)
    assert per == {"door": 6, "hall": 9}
    assert (tmp_path / "v-door.mp4").stat().st_size > 0 and (tmp_path / "v-hall.mp4").stat().st_size > 0
    both = subprocess.run([sys.executable, "-m", "edge.cli", first, "--sources", str(listing)],
                          capture_output=True, text=True)  # fmt: skip
    assert both.returncode == 2 and "one of the two" in both.stderr
