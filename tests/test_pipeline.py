"""The runtime people embed: PoseEstimator, the pipelined runner, sources, sinks and bkpose-run."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
jsonschema = pytest.importorskip("jsonschema")

from edge.decode.poses import Poses  # noqa: E402
from edge.pipeline import PoseEstimator, coerce_frame  # noqa: E402
from edge.sinks import SCHEMA_PATH, CocoSink, JsonlSink, VideoSink  # noqa: E402
from edge.sources import ListSource, LiveSource, SourceError, SyntheticSource, VideoSource, open_source  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def model(random_model):
    return random_model


@pytest.fixture(scope="module")
def estimator(model):
    est = PoseEstimator(model, device="cpu", threads=1)
    est.warmup()
    yield est
    est.close()


@pytest.fixture(scope="module")
def generated_video(bar_video):
    """20 frames of 320x240 with a moving bright bar; the frame index is painted in."""
    return bar_video(20, 10, label=True)


def pipeline_threads():
    return [t for t in threading.enumerate() if t.name.startswith("bkpose-")]


def test_single_frame_call_and_warmup(estimator, shared_data):
    frame = cv2.imread(str(sorted((shared_data / "images" / "coco_train2017_mini").glob("*.jpg"))[0]))
    poses = estimator(frame)
    assert isinstance(poses, Poses) and poses.keypoints.shape[1:] == (17, 3)
    assert set(estimator.warmup()) == {"decoder_compile_s", "first_inference_s", "preprocess_compile_s"}
    with pytest.raises(ValueError, match="BGR uint8"):
        estimator(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize("video", ["mmpose_demo.mp4", "posetrack18_000001_mpiinew_test.mp4", "generated"])
def test_every_frame_comes_out_once_and_in_order(estimator, shared_data, generated_video, video):
    path = generated_video if video == "generated" else str(shared_data / "videos" / video)
    expected = VideoSource(path).length
    results = list(estimator.stream(open_source(path)))
    assert [r.index for r in results] == list(range(expected))
    assert all(not r.skipped and r.source_size[0] > 0 for r in results)
    assert results[-1].counters["dropped"] == 0
    assert {"read", "preprocess", "infer", "decode", "latency"} <= set(results[0].timings_ms)
    assert not pipeline_threads()


def test_pipelined_results_equal_single_frame_results(estimator, generated_video):
    capture = cv2.VideoCapture(generated_video)
    frames = [capture.read()[1] for _ in range(6)]
    streamed = list(estimator.stream(ListSource(frames)))
    for frame, result in zip(frames, streamed):
        direct = estimator(frame)
        np.testing.assert_array_equal(direct.keypoints, result.poses.keypoints)


def test_latest_policy_drops_stale_frames_and_counts_them(model):
    est = PoseEstimator(model, device="cpu", threads=1)
    real_decode = est.decoder.decode

    class SlowDecoder:
        last_timings = {}

        def __init__(self, *args, **kwargs):
            pass

        def decode(self, heatmaps, lb):
            time.sleep(0.15)
            return real_decode(heatmaps, lb)

    import edge.pipeline as pipeline

    frames = [np.full((120, 160, 3), i, np.uint8) for i in range(40)]
    original = pipeline.Decoder
    pipeline.Decoder = SlowDecoder
    try:
        results = list(est.stream(ListSource(frames, live=True), policy="latest"))
    finally:
        pipeline.Decoder = original
        est.close()
    indices = [r.index for r in results]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    dropped = results[-1].counters["dropped"]
    assert dropped > 0 and len(results) + dropped == len(frames)


def test_live_source_that_fails_is_reopened_and_the_gap_counted(estimator):
    class FlakyCamera:
        opened = 0

        def __init__(self):
            FlakyCamera.opened += 1
            self.count = 0
            self.first = FlakyCamera.opened == 1

        def isOpened(self):
            return True

        def read(self):
            self.count += 1
            if self.first and self.count > 3:
                return False, None  # unplugged after 3 frames
            if not self.first and self.count > 4:
                source.close()  # end the test after 4 more frames
            return True, np.full((90, 120, 3), 100, np.uint8)

        def release(self):
            pass

    source = LiveSource(FlakyCamera, "flaky camera", first_backoff=0.05)
    results = list(estimator.stream(source, policy="all"))
    assert FlakyCamera.opened == 2
    assert source.stats.reopens == 1 and source.stats.gap_seconds >= 0.05
    assert results[-1].counters["reopens"] == 1
    assert [r.index for r in results] == list(range(len(results))) and len(results) >= 7


def test_camera_that_never_opens_is_a_clear_error(estimator):
    class Dead:
        def isOpened(self):
            return False

    with pytest.raises(SourceError, match="cannot open"):
        list(estimator.stream(LiveSource(Dead, "camera 7")))
    assert not pipeline_threads()


def test_bad_frames_are_converted_or_skipped_and_counted(estimator):
    good = np.full((60, 80, 3), 90, np.uint8)
    frames = [
        None, np.zeros((0, 80, 3), np.uint8), good[:, :, 0], good[:, :, :1],
        np.dstack([good, good[:, :, :1]]), good.astype(np.uint16) * 256, good.astype(np.float32) / 255.0,
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((60, 80, 3), np.int32), "not a frame", good,
    ]  # fmt: skip
    results = list(estimator.stream(ListSource(frames)))
    assert [r.index for r in results] == list(range(len(frames)))
    skipped = [r.index for r in results if r.skipped]
    converted = {r.index: r.converted for r in results if r.converted}
    assert skipped == [0, 1, 7, 8, 9]
    assert converted == {2: "grayscale to BGR", 3: "grayscale to BGR", 4: "BGRA to BGR",
                         5: "16-bit scaled to 8-bit", 6: "float 0..1 scaled to 0..255"}  # fmt: skip
    assert results[-1].counters["skipped"] == 5 and results[-1].counters["converted"] == 5
    # converted frames give the same poses as the equivalent BGR frame
    for i in (5, 6):
        np.testing.assert_array_equal(results[i].poses.keypoints, results[10].poses.keypoints)


def test_coerce_rule_for_each_kind():
    image, note = coerce_frame(np.full((2, 2), 7, np.uint16) * 256)
    assert (
        note == "16-bit scaled to 8-bit, grayscale to BGR" and image.shape == (2, 2, 3) and image.max() == 7
    )
    assert coerce_frame(np.full((2, 2, 3), 2.0, np.float64))[0].max() == 255  # clipped to 1.0


def test_an_exception_in_a_stage_reaches_the_caller_and_stops_everything(estimator):
    class Broken(ListSource):
        def frames(self):
            yield from list(super().frames())[:2]
            raise RuntimeError("camera driver crashed")

    with pytest.raises(RuntimeError, match="camera driver crashed"):
        list(estimator.stream(Broken([np.zeros((50, 50, 3), np.uint8)] * 5)))
    assert not pipeline_threads()


def test_leaving_the_loop_early_stops_every_thread(estimator):
    frames = [np.zeros((50, 50, 3), np.uint8)] * 50
    for result in estimator.stream(ListSource(frames)):
        if result.index == 3:
            break
    deadline = time.time() + 5
    while pipeline_threads() and time.time() < deadline:
        time.sleep(0.05)
    assert not pipeline_threads()


def test_sinks_write_schema_valid_lines_video_and_coco(estimator, generated_video, tmp_path):
    schema = json.loads(Path(SCHEMA_PATH).read_text())
    jsonl, video, coco = (
        JsonlSink(str(tmp_path / "r.jsonl")),
        VideoSink(str(tmp_path / "r.mp4"), 10),
        CocoSink(str(tmp_path / "coco.json")),
    )
    for result in estimator.stream(open_source(generated_video)):
        for sink in (jsonl, video, coco):
            sink.write(result)
    for sink in (jsonl, video, coco):
        sink.close()
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 20
    for line in lines:
        jsonschema.validate(json.loads(line), schema)
    assert VideoSource(str(tmp_path / "r.mp4")).length == 20
    results = json.loads((tmp_path / "coco.json").read_text())
    assert all(r["category_id"] == 1 and len(r["keypoints"]) == 51 for r in results)


def test_a_tracker_stage_adds_ids_to_results_and_lines(estimator, generated_video, tmp_path):
    from edge.cli import parse_args, result_stages
    from edge.tracking import PoseTracker, TrackerParams

    schema = json.loads(Path(SCHEMA_PATH).read_text())
    tracker = PoseTracker(TrackerParams(min_hits=1))
    with JsonlSink(str(tmp_path / "t.jsonl")) as sink:
        for result in estimator.stream(open_source(generated_video), stages=[tracker]):
            assert result.poses.track_ids is not None and len(result.poses.track_ids) == len(result.poses)
            assert (result.poses.track_ids >= 1).all() and result.poses.smoothed
            sink.write(result)
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    for record in records:
        jsonschema.validate(record, schema)
        assert record["version"] == 2 and all("track_id" in p and p["smoothed"] for p in record["people"])
    video = open_source(generated_video)
    assert [type(s) for s in result_stages(parse_args([generated_video]), video)] == [PoseTracker]
    assert result_stages(parse_args([generated_video, "--no-track"]), video) == []
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    images = open_source(str(tmp_path / "photos"))
    assert result_stages(parse_args([str(tmp_path)]), images) == []  # image sets: off unless asked
    assert len(result_stages(parse_args([str(tmp_path), "--track"]), images)) == 1


def test_bkpose_run_writes_outputs_for_a_shared_video(model, shared_data, tmp_path):
    video = shared_data / "videos" / "posetrack18_000001_mpiinew_test.mp4"
    out = subprocess.run(
        [sys.executable, "-m", "edge.cli", str(video), "--model", model, "--jsonl", str(tmp_path / "o.jsonl"),
         "--video", str(tmp_path / "o.mp4"), "--threads", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "5 frames" in out.stderr
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 5
    assert os.path.getsize(tmp_path / "o.mp4") > 0


def test_bkpose_run_exit_codes(model, tmp_path):
    run = [sys.executable, "-m", "edge.cli"]
    missing = subprocess.run(
        [*run, str(tmp_path / "nope.mp4"), "--model", model], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr
    (tmp_path / "a.jpg").write_bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    bad_model = subprocess.run(
        [*run, str(tmp_path), "--model", str(tmp_path / "m.onnx")], capture_output=True, text=True
    )
    assert bad_model.returncode == 2 and "error" in bad_model.stderr


def test_jsonl_survives_a_kill_mid_run(model, generated_video, tmp_path):
    """Lines are flushed per frame: after SIGKILL every complete line is valid JSON."""
    schema = json.loads(Path(SCHEMA_PATH).read_text())
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    capture = cv2.VideoCapture(generated_video)
    for i in range(20):
        ok, frame = capture.read()
        for k in range(10):  # 200 images: long enough to be killed mid-run
            cv2.imwrite(str(frames_dir / f"{i * 10 + k:05d}.jpg"), frame)
    out_path = tmp_path / "killed.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", str(frames_dir), "--model", model, "--jsonl", str(out_path),
         "--threads", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 90
    while time.time() < deadline:
        if out_path.exists() and len(out_path.read_bytes().splitlines()) >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    data = out_path.read_text()
    lines = data.split("\n")
    complete = lines[:-1]  # the text after the last newline, if any, is the frame being written
    assert 5 <= len(complete) < 200
    for index, line in enumerate(complete):
        record = json.loads(line)
        jsonschema.validate(record, schema)
        assert record["frame"] == index


def test_pipeline_benchmark_reports_both_modes(model, tmp_path):
    from benchmarks import pipeline as bench

    payload = bench.main(
        ["--model", model, "--frames", "6", "--threads", "1", "--json", str(tmp_path / "p.json")]
    )
    assert payload["sequential"]["fps"] > 0 and payload["pipelined"]["fps"] > 0
    assert payload["pipelined"]["fraction_of_bound"] > 0
    assert (tmp_path / "p.json").exists()


def test_estimator_refuses_an_incompatible_layout_and_releases_the_backend(model):
    """`require_compatible` guards every load; a failed estimator closes the backend it opened."""
    import dataclasses

    from edge.backends import open_backend
    from edge.errors import LayoutError

    backend = open_backend(model, device="cpu", threads=1)
    closed = []
    backend.close = lambda: closed.append(True)
    other_layout = dataclasses.replace(backend.info.layout, stride=8)
    backend.info = dataclasses.replace(backend.info, layout=other_layout)
    with pytest.raises(LayoutError, match="stride"):
        PoseEstimator(backend)
    assert closed == [True]


def test_the_models_decoder_constants_apply_and_the_callers_win(model):
    """A model's measured constants replace the reference defaults; the caller's replace both; a
    constant this runtime does not know is a one-line model error, and the backend is released."""
    import dataclasses

    from edge.backends import open_backend
    from edge.decode import DecoderParams
    from edge.errors import ModelError

    def backend_with(decoder):
        backend = open_backend(model, device="cpu", threads=1)
        backend.info = dataclasses.replace(backend.info, decoder=decoder)
        return backend

    with PoseEstimator(backend_with({"peak_threshold": 0.3})) as est:
        assert est.decoder.params.peak_threshold == 0.3
        assert est.decoder.params.limb_threshold == DecoderParams().limb_threshold
    with PoseEstimator(backend_with({"peak_threshold": 0.3}), peak_threshold=0.15) as est:
        assert est.decoder.params.peak_threshold == 0.15
    backend = backend_with({"peak_treshold": 0.3})
    closed = []
    backend.close = lambda: closed.append(True)
    with pytest.raises(ModelError, match="decoder constants .*peak_treshold.* re-export"):
        PoseEstimator(backend)
    assert closed == [True]
    with pytest.raises(TypeError):
        PoseEstimator(backend_with({}), peak_treshold=0.3)  # the caller's own typo stays theirs


def test_decoder_warms_up_at_the_model_heatmap_size():
    from edge.decode import Decoder

    decoder = Decoder()
    assert decoder.warmup(64, 64) >= 0  # a 256x256 model's maps
    assert decoder.warmup(32, 48) >= 0
    with pytest.raises(ValueError, match="16 x 16"):
        decoder.warmup(8, 8)


def test_sinks_are_context_managers_and_poses_validate_their_shapes(estimator, generated_video, tmp_path):
    frames = [f.image for f in VideoSource(generated_video)][:3]
    with JsonlSink(str(tmp_path / "c.jsonl")) as jsonl, CocoSink(str(tmp_path / "c.json")) as coco:
        for result in estimator.stream(ListSource(frames)):
            jsonl.write(result)
            coco.write(result)
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 3  # closed by the with block
    assert isinstance(json.loads((tmp_path / "c.json").read_text()), list)
    jsonl.close()  # a second close is harmless
    with pytest.raises(ValueError, match="same N"):
        Poses(np.zeros((2, 17, 3), np.float32), np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match=r"\[N, K, 3\]"):
        Poses(np.zeros((2, 17), np.float32), np.zeros((2,), np.float32))


def test_synthetic_source_is_one_shared_generator():
    a = open_source("synthetic:320x240")
    frames = [f.image for _, f in zip(range(10), a)]
    a.close()
    assert [f.shape for f in frames] == [(240, 320, 3)] * 10
    assert np.array_equal(frames[0], frames[8])  # 8 seeded scenes, repeated
    assert len(list(SyntheticSource(64, 64, frames=5))) == 5


def test_result_stages_run_in_frame_order_per_stream_and_are_timed(estimator):
    """A tracker's place: after decoding, per stream, each result in order, its time recorded."""
    from edge.results import ResultStage

    class Numbering(ResultStage):
        name = "track"

        def __init__(self):
            self.seen = []  # per-stream state

        def __call__(self, result):
            self.seen.append(result.index)
            result.name = f"seen-{len(self.seen)}"
            return result

    frames = [np.full((60, 80, 3), i, np.uint8) for i in range(6)]
    first, second = Numbering(), Numbering()
    results = list(estimator.stream(ListSource(frames), stages=[first]))
    list(estimator.stream(ListSource(frames[:2]), stages=[second]))
    assert first.seen == [0, 1, 2, 3, 4, 5] and second.seen == [0, 1]
    assert [r.name for r in results] == [f"seen-{i}" for i in range(1, 7)]
    assert all("track" in r.timings_ms for r in results)

    class Failing(ResultStage):
        def __call__(self, result):
            raise RuntimeError("tracker broke")

    with pytest.raises(RuntimeError, match="tracker broke"):
        list(estimator.stream(ListSource(frames), stages=[Failing()]))
    assert not pipeline_threads()
