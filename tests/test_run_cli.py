"""What a user of `bkpose-run` meets: stop signals that finish the outputs, outputs checked before
any work, one clear line per mistake, waiting for a camera, and no camera password in any output."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
jsonschema = pytest.importorskip("jsonschema")

from edge.sinks import SCHEMA_PATH  # noqa: E402
from edge.sources import LiveSource  # noqa: E402

pytestmark = pytest.mark.timeout(180)
RUN = [sys.executable, "-m", "edge.cli"]
SECRET = "S3cretPass"
SECRET_URL = f"rtsp://admin:{SECRET}@127.0.0.1:9/cam"  # nothing listens on the discard port


@pytest.fixture(scope="module")
def model(random_model):
    return random_model


@pytest.fixture(scope="module")
def long_video(bar_video):
    """A real 120-frame video: long enough to be stopped in the middle."""
    return bar_video(120, 2)


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody can write, root included: a read-only tmpfs (root), else mode 0555."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                                 capture_output=True)  # fmt: skip
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a read-only tmpfs: {mounted.stderr.decode().strip()}")
        yield folder
        subprocess.run(["umount", str(folder)], check=False)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def run(*args, **kwargs):
    return subprocess.run([*RUN, *map(str, args)], capture_output=True, text=True, timeout=150, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_finishes_video_jsonl_and_coco(model, long_video, tmp_path, signum):
    jsonl, video, coco = tmp_path / "o.jsonl", tmp_path / "o.mp4", tmp_path / "c.json"
    process = subprocess.Popen(
        [*RUN, long_video, "--model", model, "--threads", "1", "--jsonl", str(jsonl), "--video", str(video),
         "--coco", str(coco)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (jsonl.exists() and len(jsonl.read_bytes().splitlines()) >= 3):
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err and "Traceback" not in err
    schema = json.loads(Path(SCHEMA_PATH).read_text())
    lines = jsonl.read_text().splitlines()
    assert 3 <= len(lines) < 120  # stopped in the middle, every line complete
    for index, line in enumerate(lines):
        record = json.loads(line)
        jsonschema.validate(record, schema)
        assert record["frame"] == index
    capture = cv2.VideoCapture(str(video))  # the mp4 is finalised: it opens and plays every frame
    played = 0
    while capture.read()[0]:
        played += 1
    assert played == len(lines)
    assert isinstance(json.loads(coco.read_text()), list)


def test_outputs_are_checked_before_the_model_loads(model, long_video, tmp_path, readonly_dir):
    for option in ("--coco", "--jsonl", "--video"):
        out = run(long_video, "--model", tmp_path / "no-model.onnx", option, readonly_dir / "out.x")
        assert out.returncode == 2, out.stderr
        assert "cannot write" in out.stderr and "no-model" not in out.stderr  # failed before the model
        assert len(out.stderr.strip().splitlines()) == 1
    out = run(long_video, "--model", model, "--jsonl", tmp_path / "missing" / "o.jsonl")
    assert out.returncode == 2 and "does not exist" in out.stderr


@pytest.mark.parametrize(
    "option, value",
    [
        ("--max-frames", "0"),
        ("--max-frames", "-5"),
        ("--threads", "-3"),
        ("--fps", "0"),
        ("--max-frames", "x"),
    ],
)
def test_numbers_out_of_range_are_refused(tmp_path, option, value):
    out = run("video.mp4", "--model", "m.onnx", option, value)
    assert out.returncode == 2 and option in out.stderr
    assert "must be" in out.stderr or "whole number" in out.stderr


def test_show_is_refused_at_argument_time_without_a_gui(tmp_path):
    from edge.sinks import gui_available

    if gui_available():
        pytest.skip("this OpenCV has a GUI")
    out = run("video.mp4", "--model", "m.onnx", "--show")
    assert out.returncode == 2 and "headless" in out.stderr and "opencv-python" in out.stderr


def test_camera_password_never_appears_and_no_empty_output(model, tmp_path):
    jsonl = tmp_path / "cam.jsonl"
    out = run(SECRET_URL, "--model", model, "--jsonl", jsonl, "--threads", "1")
    assert out.returncode == 2
    assert "admin:***@127.0.0.1" in out.stderr
    assert SECRET not in out.stdout + out.stderr
    assert not jsonl.exists()  # nothing ran: no empty file left behind


def test_wait_retries_a_camera_missing_at_start(model, tmp_path):
    """`--wait`: the source is retried with back-off; SIGTERM while waiting exits cleanly."""
    jsonl = tmp_path / "w.jsonl"
    process = subprocess.Popen(
        [*RUN, SECRET_URL, "--model", model, "--jsonl", str(jsonl), "--wait", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(8)
    assert process.poll() is None, process.communicate()[1]  # still waiting for the camera
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "not available yet; waiting" in err and "stopped by SIGTERM after 0 frames" in err
    assert SECRET not in out + err
    assert not jsonl.exists()


def test_live_source_waits_with_backoff_then_delivers():
    attempts = []  # opening fails twice, then the camera is there

    class Camera:
        def isOpened(self):
            return True

        def read(self):
            return True, np.zeros((4, 4, 3), np.uint8)

        def release(self):
            pass

    def opener():
        attempts.append(time.perf_counter())
        return Camera() if len(attempts) >= 3 else None

    source = LiveSource(opener, "camera 9", first_backoff=0.01, wait_at_start=True)
    frame = next(iter(source))
    source.close()
    assert frame.image.shape == (4, 4, 3) and len(attempts) == 3
    assert source.stats.reopens == 0  # waiting at start is not a reconnection
