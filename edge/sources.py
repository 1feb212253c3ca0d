"""Where frames come from: image files, folders and globs, video files, cameras and streams.

`open_source(spec)` understands:
  * an image file, a folder of images, or a glob (`photos/*.jpg`)        finite, known length
  * a video file (.mp4, .avi, .mkv, .mov, ...)                             finite, known length
  * a USB camera: `0`, `1`, ... or `/dev/videoN`                           live
  * a Jetson CSI camera: `csi://0` (nvarguscamerasrc GStreamer pipeline)   live
  * an RTSP or HTTP stream: `rtsp://...`                                   live
  * a raw GStreamer pipeline: any string containing ` ! `                  live
Every source yields `Frame`s with a running index and a capture timestamp. A live source that
fails or disconnects is reopened with exponential back-off; reopenings and the time without
frames are counted and logged. A file source skips frames it cannot decode and counts them.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sized, Tuple

import numpy as np

from edge.errors import BKPoseError
from edge.redact import redact

log = logging.getLogger("bkpose.sources")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class SourceError(BKPoseError):
    """A source cannot be opened (missing file, no camera, OpenCV without GStreamer...)."""


@dataclass
class Frame:
    index: int  # position in the source, from 0
    image: Optional[np.ndarray]  # None when the frame could not be read
    timestamp: float  # time.time() at capture
    name: str = ""  # file name for image sources (used as COCO image id source)
    error: str = ""  # why `image` is None


@dataclass
class SourceStats:
    frames: int = 0
    unreadable: int = 0  # frames a file source could not decode (skipped, counted)
    reopens: int = 0  # live source reopened after a failure
    gap_seconds: float = 0.0  # time without frames while reopening

    def as_dict(self) -> Dict[str, Any]:
        return {"frames": self.frames, "unreadable": self.unreadable, "reopens": self.reopens,
                "gap_seconds": round(self.gap_seconds, 3)}  # fmt: skip


class Source:
    """Base class: iterate for frames; `live` sources run until closed; `length` if known."""

    live = False
    length: Optional[int] = None
    description = "source"
    fps = 30.0  # frames per second where the source knows it (videos), else a camera's usual rate

    def __init__(self) -> None:
        self.stats = SourceStats()
        self._closed = threading.Event()

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def close(self) -> None:
        self._closed.set()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ImageSource(Source):
    """Image files in order; an unreadable file becomes a frame with `error` set."""

    def __init__(self, files: List[str], description: str = "images") -> None:
        super().__init__()
        if not files:
            raise SourceError(f"{description}: no image files found")
        self.files = files
        self.length = len(files)
        self.description = description

    def frames(self) -> Iterator[Frame]:
        import cv2

        for index, path in enumerate(self.files):
            if self._closed.is_set():
                return
            image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            self.stats.frames += 1
            error = "" if image is not None else f"{path}: unreadable image"
            if image is None:
                self.stats.unreadable += 1
            yield Frame(index, image, time.time(), name=os.path.basename(path), error=error)


class VideoSource(Source):
    """A video file through OpenCV; undecodable frames are skipped and counted."""

    MAX_CONSECUTIVE_FAILURES = 25

    def __init__(self, path: str) -> None:
        super().__init__()
        import cv2

        self.path = path
        self.description = path
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            raise SourceError(f"{path}: OpenCV cannot open this video")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = count if count > 0 else None
        self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or 30.0
        capture.release()

    def frames(self) -> Iterator[Frame]:
        import cv2

        capture = cv2.VideoCapture(self.path)
        index, failures = 0, 0
        try:
            while not self._closed.is_set():
                ok, image = capture.read()
                if ok and image is not None:
                    failures = 0
                    self.stats.frames += 1
                    yield Frame(index, image, time.time())
                    index += 1
                    continue
                position = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
                if (
                    self.length is None
                    or position >= self.length
                    or failures >= self.MAX_CONSECUTIVE_FAILURES
                ):
                    return
                failures += 1  # a corrupt frame in the middle: skip it
                self.stats.unreadable += 1
                capture.set(cv2.CAP_PROP_POS_FRAMES, position + 1)
        finally:
            capture.release()


class LiveSource(Source):
    """A camera or stream: `opener()` returns an object with `read() -> (ok, image)` and `release()`.

    When reading fails the capture is released and reopened after 0.5 s, 1 s, 2 s ... (at most
    `max_backoff`), until it delivers again or the source is closed; each reopening is counted
    and the seconds without frames are added to `stats.gap_seconds`. With `wait_at_start` a
    source that cannot be opened at first is retried the same way instead of failing. The
    description is redacted: URL credentials never reach a log line or an output.
    """

    live = True

    def __init__(
        self,
        opener: Callable[[], Any],
        description: str,
        max_backoff: float = 8.0,
        first_backoff: float = 0.5,
        wait_at_start: bool = False,
    ) -> None:
        super().__init__()
        self.opener, self.description = opener, redact(description)
        self.wait_at_start = wait_at_start  # an appliance often boots before its camera
        self.max_backoff, self.first_backoff = max_backoff, first_backoff
        self.fps = 30.0

    def _open(self) -> Any:
        capture = self.opener()
        if capture is None or (hasattr(capture, "isOpened") and not capture.isOpened()):
            return None
        return capture

    def frames(self) -> Iterator[Frame]:
        capture = self._open()
        if capture is None:
            if not self.wait_at_start:
                raise SourceError(
                    f"{self.description}: cannot open (is it connected, and not used by another program?)"
                )
            capture = self._open_with_backoff("not available yet; waiting", count=False)
            if capture is None:  # closed while waiting
                return
        index = 0
        try:
            while not self._closed.is_set():
                ok, image = capture.read()
                if ok and image is not None:
                    self.stats.frames += 1
                    yield Frame(index, image, time.time())
                    index += 1
                    continue
                capture.release()
                capture = self._open_with_backoff("no frame; reopening", count=True)
                if capture is None:
                    return
        finally:
            if capture is not None:
                capture.release()

    def _open_with_backoff(self, why: str, count: bool) -> Any:
        """Retry opening after 0.5 s, 1 s, 2 s ... until it works (the capture) or the source is
        closed (None). `count`: a reopening after frames flowed, counted with its gap."""
        lost = time.perf_counter()
        delay = self.first_backoff
        log.warning("%s: %s", self.description, why)
        while not self._closed.wait(delay):
            capture = self._open()
            if capture is not None:
                if count:
                    self.stats.reopens += 1
                    self.stats.gap_seconds += time.perf_counter() - lost
                log.warning("%s: opened after %.1f s", self.description, time.perf_counter() - lost)
                return capture
            delay = min(delay * 2, self.max_backoff)
        return None


def quiet_ffmpeg() -> None:
    """FFmpeg inside OpenCV prints its own lines ("moov atom not found", "Connection refused",
    with the URL) before our one-line error; the commands keep only its fatal messages, unless
    OPENCV_FFMPEG_LOGLEVEL is set. Must run before the first capture is opened."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # AV_LOG_FATAL


def gstreamer_available() -> bool:
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def csi_pipeline(sensor: int = 0, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """nvarguscamerasrc (ISP) -> nvvidconv (VIC scale/convert) -> BGR appsink, for OpenCV."""
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, height={height}, "
        f"framerate={fps}/1, format=NV12 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! "
        "video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def _capture(target: Any, api: Optional[int] = None) -> Callable[[], Any]:
    def opener() -> Any:
        import cv2

        return cv2.VideoCapture(target) if api is None else cv2.VideoCapture(target, api)

    return opener


def open_source(spec: str, width: int = 1280, height: int = 720, fps: int = 30, wait: bool = False) -> Source:
    """The source `spec` names (see the module docstring). `wait`: a live source that cannot be
    opened yet is retried with the reconnection back-off instead of failing."""
    import cv2

    text = str(spec).strip()
    if text.startswith("synthetic:"):
        size = text[len("synthetic:") :]
        width, height = (int(v) for v in size.lower().split("x")) if size else (1280, 720)
        return SyntheticSource(width, height)
    if text.isdigit() or text.startswith("/dev/video"):
        index = int(text) if text.isdigit() else text
        return LiveSource(_capture(index), f"camera {text}", wait_at_start=wait)
    if text.startswith("csi://"):
        if not gstreamer_available():
            raise SourceError(
                f"{text}: a CSI camera needs OpenCV built with GStreamer, and this one is not "
                "(on Jetson use apt's python3-opencv, not the pip wheel)"
            )
        pipeline = csi_pipeline(int(text[6:] or 0), width, height, fps)
        return LiveSource(_capture(pipeline, cv2.CAP_GSTREAMER), f"CSI camera {text}", wait_at_start=wait)
    if " ! " in text:
        if not gstreamer_available():
            raise SourceError("a GStreamer pipeline needs OpenCV built with GStreamer, and this one is not")
        return LiveSource(_capture(text, cv2.CAP_GSTREAMER), "GStreamer pipeline", wait_at_start=wait)
    if "://" in text:
        return LiveSource(_capture(text), text, wait_at_start=wait)
    if os.path.isdir(text):
        files = sorted(f for f in glob.glob(os.path.join(text, "*")) if f.lower().endswith(IMAGE_SUFFIXES))
        return ImageSource(files, text)
    if any(ch in text for ch in "*?["):
        files = sorted(f for f in glob.glob(text) if f.lower().endswith(IMAGE_SUFFIXES))
        return ImageSource(files, text)
    if not os.path.exists(text):
        raise SourceError(f"{redact(text)}: no such file, folder, camera or stream")
    if text.lower().endswith(IMAGE_SUFFIXES):
        return ImageSource([text], text)
    return VideoSource(text)


def stream_name(spec: str) -> str:
    """A short name for a source: a file's stem, `cam<N>` for a camera, a URL's host and path."""
    text = redact(str(spec).strip())
    if text.isdigit():
        return f"cam{text}"
    if text.startswith("/dev/video"):
        return "cam" + text[len("/dev/video") :]
    if "://" in text:
        rest = text.split("://", 1)[1].split("@")[-1]
        return rest.strip("/").replace("/", "_").replace(":", "_") or text
    return os.path.splitext(os.path.basename(text.rstrip("/")))[0] or text


def read_sources_file(path: str) -> List[Dict[str, str]]:
    """Entries of a `--sources` file: a JSON (or, with PyYAML installed, YAML) list of
    `{"uri": ..., "name": ...}` (name optional), or a list of URIs."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise SourceError(f"{path}: cannot read the sources file ({err.strerror or err})") from None
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise SourceError(f"{path}: YAML needs PyYAML (pip install pyyaml); or use JSON") from None
        entries = yaml.safe_load(text)
    else:
        try:
            entries = json.loads(text)
        except ValueError as err:
            raise SourceError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise SourceError(f"{path}: expected a non-empty list of sources")
    out = []
    for entry in entries:
        entry = {"uri": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not entry.get("uri"):
            raise SourceError(f"{path}: every source needs a uri, found {entry!r}")
        out.append({"uri": str(entry["uri"]), "name": str(entry.get("name") or stream_name(entry["uri"]))})
    return out


def named_sources(entries: List[Dict[str, str]]) -> List[Tuple[str, str]]:
    """(unique name, uri) pairs: a repeated name gets -2, -3, ..."""
    seen: Dict[str, int] = {}
    out = []
    for entry in entries:
        name = entry["name"]
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}-{seen[name]}", entry["uri"]))
    return out


def synthetic_frame(rng: np.random.Generator, height: int = 480, width: int = 640) -> np.ndarray:
    """A smooth random BGR scene: blurred noise plus a few bright blobs and edges."""
    import cv2

    small = rng.integers(0, 256, size=(max(height // 32, 1), max(width // 32, 1), 3), dtype=np.uint8)
    frame = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(3, 8))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.circle(frame, centre, int(rng.integers(5, max(height // 6, 6))), color, -1)
        cv2.line(frame, centre, (int(rng.integers(0, width)), int(rng.integers(0, height))), color, 3)
    return frame


class SyntheticSource(Source):
    """Camera-sized generated frames (`synthetic:` or `synthetic:WxH`): `count` seeded scenes made
    once, then repeated until closed, or `frames` in all. Needs no file, camera or data: the
    bench's default source and the tests' shared one."""

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        count: int = 8,
        seed: int = 0,
        frames: Optional[int] = None,
    ) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.images = [synthetic_frame(rng, height, width) for _ in range(count)]
        self.length = frames
        self.description = f"generated {width}x{height} frames (in memory)"

    def frames(self) -> Iterator[Frame]:
        index = 0
        while not self._closed.is_set() and (self.length is None or index < self.length):
            self.stats.frames += 1
            yield Frame(index, self.images[index % len(self.images)], time.time())
            index += 1


class ListSource(Source):
    """Frames from memory or any iterable of images (tests, applications, generators); `live` as
    given. `length` is known when `images` has a length."""

    def __init__(self, images: Iterable[Any], live: bool = False) -> None:
        super().__init__()
        self.images = images
        self.length = len(images) if isinstance(images, Sized) else None
        self.live = live
        self.description = "frames in memory"

    def frames(self) -> Iterator[Frame]:
        for index, image in enumerate(self.images):
            if self._closed.is_set():
                return
            self.stats.frames += 1
            yield Frame(index, image, time.time())
