"""Prometheus metrics and /healthz, scraped with a real HTTP client during real runs."""

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

from edge.metrics import MetricsSink
from edge.outbox import Outbox
from edge.pipeline import PoseEstimator
from edge.sinks import JsonlSink
from edge.sources import open_source


def scrape(port, path="/metrics"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_add_up_to_the_json_lines_and_health_follows_the_frames(model_files, bar_video, tmp_path):
    video = bar_video(30, 4)
    metrics = MetricsSink(0, health_timeout_s=0.5)
    box = Outbox(str(tmp_path / "q.sqlite"))
    metrics.watch_queue(lambda: box.depth, lambda: box.dropped)
    jsonl = tmp_path / "r.jsonl"
    during = None
    estimator = PoseEstimator(model_files("random-s1"), device="cpu", threads=1, backend="ort")
    with estimator, JsonlSink(str(jsonl)) as lines:
        metrics.describe_model("m.onnx", estimator)
        for i, result in enumerate(estimator.stream(open_source(video))):
            lines.write(result)
            metrics.write(result)
            box.put("t", b"x")
            if i == 9:
                during = samples(scrape(metrics.port)[1])
    assert during[("bkpose_frames_total", ())] == 10
    after = samples(scrape(metrics.port)[1])
    written = jsonl.read_text().splitlines()
    assert after[("bkpose_frames_total", ())] == len(written) == 30
    assert after[("bkpose_stage_ms_count", (("stage", "infer"),))] == 30
    assert after[("bkpose_people_count", ())] == 30
    assert after[("bkpose_mqtt_queue_depth", ())] == 30 and after[("bkpose_mqtt_queue_dropped", ())] == 0
    labels = (("backend", "onnxruntime"), ("model", "m.onnx"), ("precision", "fp32"), ("trained", "false"))
    assert after[("bkpose_model_info", labels)] == 1
    assert scrape(metrics.port, "/healthz")[0] == 200
    time.sleep(0.7)  # the source is gone: no frame for longer than the timeout
    assert scrape(metrics.port, "/healthz")[0] == 503
    assert scrape(metrics.port, "/nope")[0] == 404
    metrics.close()
    box.close()


def test_bkpose_run_serves_metrics_while_it_runs(model_files, bar_video, tmp_path):
    video = bar_video(400, 1)
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", video, "--model", model_files("random-s1"), "--threads", "1",
         "--metrics-port", "0", "--jsonl", str(tmp_path / "r.jsonl")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    port = []
    err_lines = []

    def read():
        for line in process.stderr:
            err_lines.append(line)
            found = re.search(r"metrics on http://0\.0\.0\.0:(\d+)/", line)
            if found:
                port.append(int(found.group(1)))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + 60
    frames = 0
    while time.time() < deadline and frames < 5:
        time.sleep(0.2)
        if port:
            frames = samples(scrape(port[0])[1]).get(("bkpose_frames_total", ()), 0)
    assert frames >= 5, "".join(err_lines)
    assert scrape(port[0], "/healthz")[0] == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 143
