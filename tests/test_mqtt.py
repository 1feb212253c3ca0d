"""MQTT output against a real Mosquitto broker on 127.0.0.1: delivery, order, the broker going
away and coming back, a killed bkpose-run, the queue bound. Skips where mosquitto is missing
(`.ci/run` installs Debian's package)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

mqtt = pytest.importorskip("paho.mqtt.client")
jsonschema = pytest.importorskip("jsonschema")

from benchmarks.mosquitto import MOSQUITTO, Broker  # noqa: E402
from edge.mqtt import MqttError, MqttSink, MqttTarget, Publisher  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from edge.results import Result, empty_poses  # noqa: E402
from edge.sinks import SCHEMA_PATH  # noqa: E402

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto is not installed (apt-get install mosquitto)"
)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


class Subscriber:
    """A real client collecting messages of a topic; `frames()` dedupes by (stream, frame)."""

    def __init__(self, port, topic):
        self.messages = []
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}", clean_session=False
        )
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, m.retain))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(topic, 1), (topic + "/status", 1)])
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def payloads(self, topic):
        return [json.loads(p) for t, p, _ in self.messages if t == topic]

    def frames(self, topic):
        seen, order = set(), []
        for m in self.payloads(topic):
            key = (m["stream"], m["result"]["frame"])
            if key not in seen:
                seen.add(key)
                order.append(m["result"]["frame"])
        return order

    def wait_for(self, topic, count, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.frames(topic)) < count:
            time.sleep(0.05)
        return self.frames(topic)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def result(i):
    kps = np.zeros((1, 17, 3), np.float32)
    kps[0, :, :2], kps[0, :, 2] = 100 + i, 0.9
    from edge.decode.poses import Poses

    return Result(index=i, timestamp=1000.0 + i / 30, source_size=(640, 480),
                  poses=Poses(kps, np.array([0.8], np.float32)))  # fmt: skip


def validator():
    from referencing import Registry, Resource

    schemas = Path(SCHEMA_PATH).parent
    line = json.loads(Path(SCHEMA_PATH).read_text())
    message = json.loads((schemas / "mqtt_message.json").read_text())
    registry = Registry().with_resource(
        "https://bkpose/schemas/result_line.json", Resource.from_contents(line)
    )
    return jsonschema.Draft202012Validator(message, registry=registry)


def test_every_frame_arrives_in_order_and_validates(broker, tmp_path):
    broker.start()
    topic = "site/cam1"
    sub = Subscriber(broker.port, topic)
    time.sleep(0.3)
    url = f"mqtt://127.0.0.1:{broker.port}/{topic}"
    with MqttSink(url, str(tmp_path / "q.sqlite"), device_id="dev1", stream_id="s1") as sink:
        for i in range(50):
            sink.write(result(i))
        assert sink.flush(20)
    assert sub.wait_for(topic, 50) == list(range(50))
    check = validator()
    for message in sub.payloads(topic):
        check.validate(message)
        assert message["device"] == "dev1" and message["stream"] == "s1" and message["queue_dropped"] == 0
    statuses = [json.loads(p) for t, p, _ in sub.messages if t == topic + "/status"]
    assert statuses[0]["online"] is True and statuses[-1]["online"] is False
    sub.close()


def test_broker_down_then_back_loses_nothing(broker, tmp_path):
    broker.start()
    topic = "site/cam2"
    sub = Subscriber(broker.port, topic)
    time.sleep(0.3)
    sink = MqttSink(f"mqtt://127.0.0.1:{broker.port}/{topic}", str(tmp_path / "q.sqlite"), stream_id="s")
    for i in range(20):
        sink.write(result(i))
    sub.wait_for(topic, 20)
    broker.stop()  # the network goes away mid-run
    for i in range(20, 60):
        sink.write(result(i))
        time.sleep(0.005)
    assert sink.outbox.depth > 0  # waiting on disk
    broker.start()
    assert sub.wait_for(topic, 60, timeout=30) == list(range(60))
    sink.close()
    sub.close()


def test_a_killed_run_delivers_its_queue_after_restart(broker, tmp_path, bar_video, model_files):
    """bkpose-run publishes into the void (broker down), is SIGKILLed, then broker and run restart."""
    topic, queue = "site/cam3", tmp_path / "queue.sqlite"
    video = bar_video(40, 5)
    model = model_files("random-s1")
    url = f"mqtt://127.0.0.1:{broker.port}/{topic}"
    run = [sys.executable, "-m", "edge.cli", video, "--model", model, "--threads", "1", "--mqtt", url,
           "--mqtt-queue", str(queue), "--mqtt-stream-id", "cam3"]  # fmt: skip
    first = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and Outbox(str(queue)).depth < 10:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    queued = Outbox(str(queue)).depth
    assert queued >= 10
    broker.start()
    sub = Subscriber(broker.port, topic)
    time.sleep(0.3)
    again = [*run, "--max-frames", "3", "--mqtt-stream-id", "cam3-again"]
    second = subprocess.run(again, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    frames = sub.wait_for(topic, queued + 3)
    assert frames == list(range(queued)) + [0, 1, 2]  # the killed run's frames in order, then the new run's
    streams = [m["stream"] for m in sub.payloads(topic)]
    assert streams[0] == "cam3" and streams[-1] == "cam3-again"
    sub.close()


def test_the_queue_bound_drops_the_oldest_and_counts():
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        box = Outbox(str(Path(folder) / "q.sqlite"), max_messages=5)
        for i in range(8):
            box.put("t", str(i).encode())
        assert box.depth == 5 and box.dropped == 3
        assert [p for _, _, p in box.peek(10)] == [b"3", b"4", b"5", b"6", b"7"]
        box.remove([s for s, _, _ in box.peek(2)])
        box.close()
        again = Outbox(str(Path(folder) / "q.sqlite"), max_messages=5)  # a restart keeps both
        assert again.depth == 3 and again.dropped == 3
        again.close()


def test_bad_urls_and_policies_are_clear():
    with pytest.raises(MqttError, match="mqtt://host"):
        MqttTarget.parse("http://broker/topic")
    with pytest.raises(MqttError, match="not the URL"):
        MqttTarget.parse("mqtt://user:secret@broker/topic")
    assert MqttTarget.parse("mqtts://broker/a/b").port == 8883
    with pytest.raises(MqttError, match="every:N"):
        Publisher("every:0")
    every3 = Publisher("every:3")
    assert [every3.wants(result(i)) for i in range(6)] == [True, False, False, True, False, False]
    change = Publisher("change")
    same = [change.wants(result(i)) for i in range(3)]
    skipped = Result(index=3, timestamp=0, source_size=(0, 0), poses=empty_poses(), skipped="empty")
    assert same == [True, False, False] and change.wants(skipped) is True
