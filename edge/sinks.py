"""Where results go: JSON Lines, an annotated video or images, COCO results JSON.

JSON Lines: one object per frame, written and flushed as the frame completes, so a crash or a
kill loses at most the frame being written. Schema: `edge/schemas/result_line.json`.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from edge.errors import BKPoseError
from edge.files import check_writable, save_json
from edge.layout import COCO_SKELETON
from edge.results import Result

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas", "result_line.json")


class SinkError(BKPoseError):
    """An output cannot be written (folder missing, disk full, codec unavailable)."""


RECORD_VERSION = 2  # 2: version, track_id, smoothed


def result_record(result: Result) -> Dict[str, Any]:
    poses = result.poses
    people = []
    for i, (keypoints, score) in enumerate(zip(poses.keypoints, poses.scores)):
        points = [[round(float(x), 2), round(float(y), 2), round(float(s), 4)] for x, y, s in keypoints]
        person: Dict[str, Any] = {"keypoints": points, "score": round(float(score), 4)}
        if poses.track_ids is not None:
            person["track_id"] = int(poses.track_ids[i])
            person["smoothed"] = poses.smoothed
        people.append(person)
    record: Dict[str, Any] = {
        "version": RECORD_VERSION,
        "frame": result.index,
        "timestamp": round(result.timestamp, 6),
        "source_size": list(result.source_size),
        "people": people,
        "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
        "counters": result.counters,
    }
    if result.skipped:
        record["skipped"] = result.skipped
    if result.converted:
        record["converted"] = result.converted
    if result.name:
        record["name"] = result.name
    if result.stream:
        record["stream"] = result.stream
    return record


class Sink:
    """Where results go: `write(result)` per frame, `close()` once (it finalises the file), and a
    context manager, so a `with` block finalises the output however the run ends."""

    def write(self, result: Result) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the output; safe to call twice."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class JsonlSink(Sink):
    """One JSON line per frame, flushed per frame (and fsync'd when `durable`).

    The path is checked when the sink is made (before any work), but the file is opened at the
    first line, so a run that processed nothing leaves no empty file. It is opened for appending,
    so a restarted service continues the same file and logrotate's `copytruncate` works; delete
    the file first for a fresh one.
    """

    def __init__(self, path: str, durable: bool = False) -> None:
        self.path, self.durable = path, durable
        self.file: Optional[Any] = None
        check_output(path, "JSON Lines")

    def write(self, result: Result) -> None:
        line = json.dumps(result_record(result), separators=(",", ":")) + "\n"
        try:
            if self.file is None:
                self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self.file.write(line)
            self.file.flush()
            if self.durable:
                os.fsync(self.file.fileno())
        except OSError as err:
            raise SinkError(
                f"{self.path}: writing failed ({err.strerror or err}); is the disk full?"
            ) from None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def check_output(path: str, what: str) -> None:
    """SinkError unless `path` can be written: said before a model loads or a frame runs."""
    try:
        check_writable(path)
    except OSError as err:
        raise SinkError(f"{path}: cannot write {what} ({err.strerror or err})") from None


def gui_available() -> bool:
    """Whether OpenCV can open windows (`opencv-python-headless`, the default install, cannot)."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "NO", "")
    return True


def id_colour(key: int) -> Tuple[int, int, int]:
    """A bright BGR colour that stays the same for one track ID (or person index) everywhere."""
    return tuple(int(c) for c in np.random.default_rng(key).integers(64, 256, 3))  # type: ignore[return-value]


def draw_poses(image: np.ndarray, result: Result, min_score: float = 0.0) -> np.ndarray:
    """Skeletons (COCO-17 edges) and keypoints drawn on a copy of the frame."""
    import cv2

    canvas = image.copy()
    scale = max(1, int(round(max(canvas.shape[:2]) / 640)))
    ids = result.poses.track_ids
    for person, keypoints in enumerate(result.poses.keypoints):
        track = -1 if ids is None else int(ids[person])
        color = id_colour(track if track >= 0 else person)
        found = keypoints[:, 2] > min_score
        if track >= 0 and found.any():  # the ID above the head (the highest found keypoint)
            top = keypoints[found][np.argmin(keypoints[found, 1])]
            at = (int(round(top[0])) - 8 * scale, int(round(top[1])) - 8 * scale)
            font = cv2.FONT_HERSHEY_SIMPLEX
            cv2.putText(canvas, str(track), at, font, 0.6 * scale, color, 2 * scale, cv2.LINE_AA)
        for a, b in COCO_SKELETON:
            if found[a] and found[b]:
                pa = (int(round(keypoints[a, 0])), int(round(keypoints[a, 1])))
                pb = (int(round(keypoints[b, 0])), int(round(keypoints[b, 1])))
                cv2.line(canvas, pa, pb, color, 2 * scale, cv2.LINE_AA)
        for x, y, _ in keypoints[found]:
            cv2.circle(canvas, (int(round(x)), int(round(y))), 3 * scale, (255, 255, 255), -1, cv2.LINE_AA)
    return canvas


class VideoSink(Sink):
    """Annotated frames into a video file (mp4v) sized by the first frame."""

    def __init__(self, path: str, fps: float = 30.0) -> None:
        self.path, self.fps = path, fps
        self.writer: Any = None
        self.size: Optional[tuple] = None
        check_output(path, "video")

    def write(self, result: Result) -> None:
        import cv2

        if result.image is None:
            return
        frame = draw_poses(result.image, result)
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise SinkError(f"{self.path}: OpenCV cannot open a video writer (codec or folder missing?)")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


class CocoSink(Sink):
    """COCO keypoint results JSON for an image set (score with pycocotools).

    Results are written at `close`, atomically; the path is checked when the sink is made. If
    writing still fails (the disk filled up meanwhile), they go to a file in the temporary folder
    and the error names it: a whole run's results are never lost to the last step. Nothing is
    written when no frame ran.
    """

    def __init__(self, path: str, image_ids: Optional[Dict[str, int]] = None) -> None:
        self.path, self.image_ids = path, image_ids or {}
        self.results: List[Dict[str, Any]] = []
        self.frames = 0
        check_output(path, "COCO results")

    def image_id(self, result: Result) -> int:
        if result.name in self.image_ids:
            return self.image_ids[result.name]
        stem = os.path.splitext(result.name)[0]
        return int(stem) if stem.isdigit() else result.index

    def write(self, result: Result) -> None:
        self.frames += 1
        self.results.extend(result.poses.to_coco_results(self.image_id(result)))

    def close(self) -> None:
        if not self.frames:
            return
        self.frames = 0  # written once, however often close() is called
        try:
            save_json(self.results, self.path)
        except OSError as err:
            fallback = os.path.join(tempfile.gettempdir(), f"bkpose-coco-{os.getpid()}.json")
            try:
                save_json(self.results, fallback)
                kept = f"; the {len(self.results)} results were saved to {fallback}"
            except OSError:
                kept = ""
            raise SinkError(f"{self.path}: cannot write COCO results ({err.strerror or err}){kept}") from None


class PerStreamSink(Sink):
    """One sink per stream of a several-camera run, made at the stream's first result by
    `make(stream)` (an annotated video per camera, say)."""

    def __init__(self, make: Callable[[str], Sink]) -> None:
        self.make = make
        self.sinks: Dict[str, Sink] = {}

    def write(self, result: Result) -> None:
        if result.stream not in self.sinks:
            self.sinks[result.stream] = self.make(result.stream)
        self.sinks[result.stream].write(result)

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


def per_stream_path(path: str, stream: str) -> str:
    """`out.mp4` -> `out-<stream>.mp4`."""
    stem, suffix = os.path.splitext(path)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stream)
    return f"{stem}-{safe}{suffix}"
