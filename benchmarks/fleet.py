"""Fleet outputs, measured: MQTT messages per second to a local Mosquitto, the on-disk queue's
bytes per message, and the pipeline's FPS with MQTT publishing into a broker that is down
against MQTT off, in one run (alternating blocks, so the machine's noise hits both alike).

    python -m benchmarks.fleet [--messages 2000] [--frames 60] [--rounds 3] [--json results/fleet.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import RESULTS_DIR, write_json
from benchmarks.mosquitto import Broker, free_port
from edge.decode.poses import Poses
from edge.mqtt import MqttSink, message
from edge.outbox import Outbox
from edge.results import Result


def sample_result(index: int, people: int = 3) -> Result:
    rng = np.random.default_rng(index)
    kps = rng.uniform(0, 640, (people, 17, 3)).astype(np.float32)
    kps[:, :, 2] = rng.uniform(0.2, 1, (people, 17))
    poses = Poses(kps, rng.uniform(0.3, 1, people).astype(np.float32), track_ids=np.arange(1, people + 1))
    return Result(index=index, timestamp=time.time(), source_size=(1280, 720), poses=poses,
                  timings_ms={"read": 1.0, "preprocess": 2.0, "infer": 30.0, "decode": 1.5})  # fmt: skip


def messages_per_second(folder: Path, count: int) -> Dict[str, float]:
    """Results written to the sink until the broker has acknowledged them all."""
    broker = Broker(folder).start()
    try:
        sink = MqttSink(f"mqtt://127.0.0.1:{broker.port}/bench/rate", str(folder / "rate.sqlite"))
        sink.connected.wait(10)
        results = [sample_result(i) for i in range(count)]
        start = time.perf_counter()
        for r in results:
            sink.write(r)
        written = time.perf_counter() - start
        sink.flush(120)
        seconds = time.perf_counter() - start
        delivered = sink.published
        sink.close()
    finally:
        broker.stop()
    return {"messages": count, "delivered": delivered, "seconds": seconds, "per_second": delivered / seconds,
            "write_us_per_message": 1e6 * written / count}  # fmt: skip


def queue_bytes(folder: Path, count: int) -> Dict[str, float]:
    """On-disk size of `count` queued messages of 3 people each (the broker down)."""
    box = Outbox(str(folder / "size.sqlite"))
    sizes = []
    for i in range(count):
        payload = message(sample_result(i), "device-01", "bkpose-device-01-0123abcd", "cam1", 0)
        sizes.append(len(payload))
        box.put("bench/size", payload)
    box.checkpoint()
    box.close()
    on_disk = sum(os.path.getsize(p) for p in folder.glob("size.sqlite*"))
    return {"messages": count, "payload_bytes_mean": statistics.mean(sizes), "on_disk_bytes": on_disk,
            "on_disk_bytes_per_message": on_disk / count}  # fmt: skip


def fps_with_broker_down(folder: Path, frames: int, rounds: int) -> Dict[str, Any]:
    from edge.default_model import default_onnx
    from edge.pipeline import PoseEstimator
    from edge.sources import SyntheticSource

    dead = f"mqtt://127.0.0.1:{free_port()}/bench/down"  # nobody listens there
    runs: Dict[str, List[float]] = {"off": [], "broker_down": []}
    with PoseEstimator(default_onnx(print), device="cpu") as estimator:
        estimator.warmup()
        for r in range(rounds):
            for mode in ("off", "broker_down") if r % 2 == 0 else ("broker_down", "off"):
                sink = MqttSink(dead, str(folder / f"down-{r}.sqlite")) if mode == "broker_down" else None
                start = time.perf_counter()
                count = 0
                for result in estimator.stream(SyntheticSource(640, 480, frames=frames)):
                    if sink is not None:
                        sink.write(result)
                    count += 1
                runs[mode].append(count / (time.perf_counter() - start))
                if sink is not None:
                    sink.close(drain_s=0)
                print(f"round {r + 1}: MQTT {mode:11s} {runs[mode][-1]:.2f} FPS", flush=True)
    off, down = statistics.median(runs["off"]), statistics.median(runs["broker_down"])
    return {"frames": frames, "rounds": rounds, "fps": runs, "median_off": off, "median_broker_down": down,
            "ratio": down / off}  # fmt: skip


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=str(RESULTS_DIR / "fleet.json"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rate = messages_per_second(folder, args.messages)
        print(f"MQTT to a local mosquitto: {rate['delivered']}/{rate['messages']} delivered, "
              f"{rate['per_second']:.0f} messages/s; "
              f"write() {rate['write_us_per_message']:.0f} us each")  # fmt: skip
        size = queue_bytes(folder, args.messages)
        print(f"queue: {size['payload_bytes_mean']:.0f} B payload, "
              f"{size['on_disk_bytes_per_message']:.0f} B on disk per message "
              "(3 people per frame)")  # fmt: skip
        fps = fps_with_broker_down(folder, args.frames, args.rounds)
        print(f"FPS with MQTT on and the broker down / MQTT off: {fps['ratio']:.3f} "
              f"({fps['median_broker_down']:.2f} / {fps['median_off']:.2f}, "
              f"medians of {args.rounds})")  # fmt: skip
    print(f"JSON -> {write_json(Path(args.json), {'rate': rate, 'queue': size, 'fps': fps})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
