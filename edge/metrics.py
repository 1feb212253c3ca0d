"""Prometheus metrics and a health check for a fleet's monitoring (prometheus-client, the
`metrics` extra).

    bkpose-run 0 --metrics-port 9100 [--health-timeout 10]

`GET /metrics` is the Prometheus text format: frames, FPS, per-stage latency histograms (the
`edge.stages` names), dropped and skipped frames, people per frame, source reopenings, the MQTT
queue's depth and drops, and the model, backend and precision. `GET /healthz` answers 200 while
frames are flowing and 503 once none has come for `--health-timeout` seconds (a camera gone).
The server is a daemon thread of the standard library's HTTP server; metrics live in a registry of
their own, so several runs in one process do not collide.
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Sequence

from edge.argtypes import above, at_least
from edge.errors import BKPoseError
from edge.results import Result
from edge.sinks import Sink

LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500)
PEOPLE_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55)
FPS_WINDOW_S = 5.0


class MetricsError(BKPoseError):
    """prometheus-client missing, or the port cannot be served."""


class MetricsSink(Sink):
    """Counts every result into Prometheus metrics and serves them on `port` (0: any free port;
    the chosen one is `self.port`)."""

    def __init__(self, port: int, health_timeout_s: float = 10.0, host: str = "0.0.0.0") -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
        except ImportError:
            raise MetricsError(
                "--metrics-port needs prometheus-client: pip install 'bkpose[metrics]'"
            ) from None
        self.registry = registry = CollectorRegistry()
        self.frames = Counter("bkpose_frames", "frames processed", registry=registry)
        self.fps = Gauge(
            "bkpose_fps", f"frames per second over the last {FPS_WINDOW_S:g} s", registry=registry
        )
        self.latency = Histogram("bkpose_stage_ms", "per-stage time per frame, ms", ["stage"],
                                 buckets=LATENCY_BUCKETS_MS, registry=registry)  # fmt: skip
        self.people = Histogram(
            "bkpose_people", "people per frame", buckets=PEOPLE_BUCKETS, registry=registry
        )
        events = "running totals of the source and runner: dropped, skipped, converted, unreadable, reopens"
        self.source = Gauge("bkpose_source_events", events, ["event"], registry=registry)
        self.queue_depth = Gauge(
            "bkpose_mqtt_queue_depth", "MQTT messages waiting on disk", registry=registry
        )
        self.queue_dropped = Gauge("bkpose_mqtt_queue_dropped", "MQTT messages dropped (queue full)",
                                   registry=registry)  # fmt: skip
        self.model = Info("bkpose_model", "the model this run uses", registry=registry)
        self.health_timeout_s = health_timeout_s
        self.last_frame = time.monotonic()  # start-up counts as flowing until the timeout
        self.window: Deque[float] = collections.deque()
        self._lock = threading.Lock()
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as err:
            raise MetricsError(f"cannot serve metrics on port {port} ({err.strerror or err})") from None
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="bkpose-metrics", daemon=True)
        self.thread.start()

    def describe_model(self, path: str, estimator: Any) -> None:
        info = estimator.info
        self.model.info({"model": str(path), "backend": estimator.backend.name, "precision": info.precision,
                         "trained": str(info.trained).lower()})  # fmt: skip

    def watch_queue(self, depth: Callable[[], float], dropped: Callable[[], float]) -> None:
        """Read the MQTT queue's depth and drops at each scrape."""
        self.queue_depth.set_function(depth)
        self.queue_dropped.set_function(dropped)

    @property
    def healthy(self) -> bool:
        return time.monotonic() - self.last_frame <= self.health_timeout_s

    def write(self, result: Result) -> None:
        now = time.monotonic()
        with self._lock:
            self.last_frame = now
            self.window.append(now)
            while self.window and now - self.window[0] > FPS_WINDOW_S:
                self.window.popleft()
            span = now - self.window[0]
            self.fps.set((len(self.window) - 1) / span if span > 0 else 0.0)
        self.frames.inc()
        if not result.skipped:
            self.people.observe(len(result.poses))
        for stage, ms in result.timings_ms.items():
            self.latency.labels(stage).observe(ms)
        for event, total in result.counters.items():
            self.source.labels(event).set(total)

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()


def _handler(sink: MetricsSink) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server method name
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(sink.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = sink.healthy
                self._reply(200 if ok else 503, b"ok\n" if ok else b"no frames\n", "text/plain")
            else:
                self._reply(404, b"/metrics or /healthz\n", "text/plain")

        def _reply(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # scrapes are not worth a line each
            pass

    return Handler


def add_metrics_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-port", type=at_least(0), help="serve Prometheus /metrics and /healthz on "
                   "this port (the metrics extra; 0: any free port)")  # fmt: skip
    p.add_argument("--health-timeout", type=above(0), default=10.0,
                   help="/healthz is 503 after this many seconds without a frame (default 10)")  # fmt: skip


def sink_from_args(args: argparse.Namespace, queues: Sequence[Any] = ()) -> MetricsSink:
    """The sink `add_metrics_options` describes, watching the MQTT `queues` (Outbox) if any."""
    sink = MetricsSink(args.metrics_port, args.health_timeout)
    for box in queues:
        sink.watch_queue(lambda box=box: box.depth, lambda box=box: box.dropped)
    print(f"bkpose-run: metrics on http://0.0.0.0:{sink.port}/metrics and /healthz", file=sys.stderr)
    return sink
