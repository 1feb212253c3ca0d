"""Poses to a fleet over MQTT (paho-mqtt 2.x, the `mqtt` extra), with store-and-forward.

    bkpose-run video.mp4 --mqtt mqtt://broker:1883/site/cam1 [--mqtt-policy change]

Every result becomes one message (`edge/schemas/mqtt_message.json`: the JSON Lines record, the
device, client and stream identity, and how many messages the queue had to drop) on the topic of
the URL, QoS 1. `write()` only appends to an on-disk `Outbox` and returns: the pipeline never
waits for the network. A sender thread publishes the queue in order while connected, with a
window of messages in flight, and removes each one when the broker acknowledges it; after a
disconnect it starts again from the oldest unacknowledged, so nothing is lost (QoS 1 may repeat a
message; subscribers dedupe by stream and frame). The queue survives a restart. The broker keeps a
retained `<topic>/status` of `{"online": true}`, and the last will turns it to false when the
device disappears. Credentials come from `BKPOSE_MQTT_USERNAME` / `BKPOSE_MQTT_PASSWORD` or a
`username:password` file, never from the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from edge.argtypes import at_least
from edge.errors import BKPoseError
from edge.files import user_cache_dir
from edge.outbox import Outbox
from edge.results import Result
from edge.sinks import Sink, result_record

MESSAGE_FORMAT = "bkpose-mqtt/1"
POLICIES = ("every", "change")  # and "every:N"


class MqttError(BKPoseError):
    """A bad MQTT URL or option, or paho-mqtt missing."""


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    topic: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> MqttTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or not parts.path.strip("/"):
            raise MqttError(f"{url!r}: expected mqtt://host[:port]/topic or mqtts://host[:port]/topic")
        if parts.username or parts.password:
            raise MqttError(
                "put MQTT credentials in BKPOSE_MQTT_USERNAME/PASSWORD or --mqtt-credentials, not the URL"
            )
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), parts.path.strip("/"), tls)


def read_credentials(path: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(username, password) from a `username:password` file, else the environment."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                user, _, password = f.read().strip().partition(":")
        except OSError as err:
            raise MqttError(f"{path}: cannot read MQTT credentials ({err.strerror or err})") from None
        return user or None, password or None
    return os.environ.get("BKPOSE_MQTT_USERNAME"), os.environ.get("BKPOSE_MQTT_PASSWORD")


def message(result: Result, device: str, client: str, stream: str, queue_dropped: int) -> bytes:
    """One MQTT payload (`edge/schemas/mqtt_message.json`)."""
    body = {"format": MESSAGE_FORMAT, "device": device, "client": client, "stream": stream,
            "queue_dropped": queue_dropped, "result": result_record(result)}  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


class Publisher:
    """Decides which results are sent: every one, every N-th, or when the people or IDs change."""

    def __init__(self, policy: str = "every") -> None:
        self.every, self.on_change = 1, False
        if policy.startswith("every:"):
            try:
                self.every = int(policy.split(":", 1)[1])
            except ValueError:
                self.every = 0
            if self.every < 1:
                raise MqttError(f"--mqtt-policy every:N needs a whole N >= 1, found {policy!r}")
        elif policy == "change":
            self.on_change = True
        elif policy != "every":
            raise MqttError(f"--mqtt-policy must be every, every:N or change, found {policy!r}")
        self.count = 0
        self.last: Optional[Tuple[Any, ...]] = None

    def wants(self, result: Result) -> bool:
        self.count += 1
        if self.on_change:
            ids = result.poses.track_ids
            now = (len(result.poses), tuple(ids.tolist()) if ids is not None else None)
            changed, self.last = now != self.last, now
            return changed
        return (self.count - 1) % self.every == 0


class MqttSink(Sink):
    """Results to an MQTT topic through an on-disk queue (`queue_path`, at most `max_queued`)."""

    def __init__(
        self,
        url: str,
        queue_path: str,
        device_id: Optional[str] = None,
        stream_id: str = "0",
        policy: str = "every",
        max_queued: int = 100_000,
        window: int = 20,
        credentials: Optional[str] = None,
        ca: Optional[str] = None,
        cert: Optional[str] = None,
        key: Optional[str] = None,
    ) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise MqttError("--mqtt needs paho-mqtt: pip install 'bkpose[mqtt]'") from None
        self.target = MqttTarget.parse(url)
        self.device_id = device_id or socket.gethostname()
        self.stream_id = stream_id
        self.client_id = f"bkpose-{self.device_id}-{uuid.uuid4().hex[:8]}"
        self.publisher = Publisher(policy)
        self.outbox = Outbox(queue_path, max_queued)
        self.window = window
        self.status_topic = f"{self.target.topic}/status"
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.in_flight: Dict[int, int] = {}  # paho mid -> queue seq
        self.sent_up_to = 0  # highest seq handed to paho since the last connect
        self.acknowledged: List[int] = []  # seqs the broker acknowledged, not yet removed
        self.published = 0  # acknowledged by the broker
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        client.max_inflight_messages_set(window)
        user, password = read_credentials(credentials)
        if user:
            client.username_pw_set(user, password)
        if self.target.tls or ca or cert:
            client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        client.will_set(self.status_topic, self._status(False), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(min_delay=1, max_delay=8)
        self.client = client
        client.connect_async(self.target.host, self.target.port, keepalive=15)
        client.loop_start()
        self.sender = threading.Thread(target=self._send, name="bkpose-mqtt", daemon=True)
        self.sender.start()

    def _status(self, online: bool) -> bytes:
        return json.dumps({"device": self.device_id, "client": self.client_id, "online": online}).encode()

    # ------------------------------------------------------------------ paho callbacks (its thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            return
        with self.lock:
            self.in_flight.clear()
            self.sent_up_to = 0  # resend everything not yet acknowledged, oldest first
        client.publish(self.status_topic, self._status(True), qos=1, retain=True)
        self.connected.set()
        self.wake.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.connected.clear()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self.lock:
            seq = self.in_flight.pop(mid, None)
            if seq is not None:
                self.acknowledged.append(seq)  # the sender thread removes it (its connection)
        self.wake.set()

    # ------------------------------------------------------------------ sender thread
    def _forget_acknowledged(self) -> None:
        with self.lock:
            done, self.acknowledged = self.acknowledged, []
        self.outbox.remove(done)
        self.published += len(done)

    def _send(self) -> None:
        try:
            while not self.stop.is_set():
                self.wake.wait(0.5)
                self.wake.clear()
                self._forget_acknowledged()
                while self.connected.is_set() and not self.stop.is_set():
                    with self.lock:
                        room, after = self.window - len(self.in_flight), self.sent_up_to
                    if room <= 0:
                        break
                    batch = [m for m in self.outbox.peek(self.window * 2) if m[0] > after][:room]
                    if not batch:
                        break
                    for seq, topic, payload in batch:
                        info = self.client.publish(topic, payload, qos=1)
                        if info.rc != 0:  # not connected any more: the next connect resends
                            break
                        with self.lock:
                            self.in_flight[info.mid] = seq
                            self.sent_up_to = seq
        finally:
            self._forget_acknowledged()
            self.outbox.close()

    # ------------------------------------------------------------------ Sink
    def write(self, result: Result) -> None:
        if not self.publisher.wants(result):
            return
        stream = result.stream or self.stream_id  # several cameras: each result names its own
        payload = message(result, self.device_id, self.client_id, stream, self.outbox.dropped)
        self.outbox.put(self.target.topic, payload)
        self.wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the queue to empty (True if it did)."""
        deadline = time.monotonic() + timeout
        while self.outbox.depth and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.outbox.depth == 0

    def close(self, drain_s: float = 2.0) -> None:
        """Give queued messages a moment to go, then stop; what is left stays queued on disk."""
        if self.stop.is_set():
            return
        if self.connected.is_set():
            self.flush(drain_s)
            self.client.publish(self.status_topic, self._status(False), qos=1, retain=True).wait_for_publish(
                1
            )
        self.stop.set()
        self.wake.set()
        self.sender.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()
        self.outbox.close()


def add_mqtt_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("MQTT (the mqtt extra; credentials: BKPOSE_MQTT_USERNAME/PASSWORD)")
    add = group.add_argument
    add("--mqtt", metavar="URL", help="publish results to mqtt://host[:port]/topic (mqtts:// for TLS)")
    add("--mqtt-queue", metavar="FILE", help="on-disk queue of messages not yet acknowledged; survives "
        "restarts (default: in the user cache folder, one per topic and stream)")  # fmt: skip
    add("--mqtt-max-queued", type=at_least(1), default=100_000, help="queue bound; the oldest are dropped")
    add("--mqtt-policy", default="every", help="every (default), every:N, or change (people or IDs changed)")
    add("--mqtt-device-id", help="device id in every message (default: the host name)")
    add("--mqtt-stream-id", help="stream id in every message (default: the source)")
    add("--mqtt-credentials", metavar="FILE", help="a username:password file")
    add("--mqtt-ca", metavar="FILE", help="CA certificate (TLS)")
    add("--mqtt-cert", metavar="FILE", help="client certificate (TLS)")
    add("--mqtt-key", metavar="FILE", help="client key (TLS)")


def sink_from_args(args: argparse.Namespace, stream: str) -> MqttSink:
    """The sink `add_mqtt_options` describes; `stream`: the stream id unless --mqtt-stream-id."""
    stream = args.mqtt_stream_id or stream
    queue = args.mqtt_queue
    if not queue:
        key = hashlib.sha256(f"{MqttTarget.parse(args.mqtt).topic}|{stream}".encode()).hexdigest()[:12]
        queue = os.path.join(user_cache_dir("mqtt"), f"queue-{key}.sqlite")
    return MqttSink(
        args.mqtt, queue, device_id=args.mqtt_device_id, stream_id=stream, policy=args.mqtt_policy,
        max_queued=args.mqtt_max_queued, credentials=args.mqtt_credentials, ca=args.mqtt_ca,
        cert=args.mqtt_cert, key=args.mqtt_key,
    )  # fmt: skip
