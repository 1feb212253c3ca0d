"""What a camera appliance calls: `PoseEstimator` for one frame, `stream()` for many, pipelined.

    with PoseEstimator("engines/bkpose.fp32.onnx") as estimator:
        estimator.warmup()
        poses = estimator(frame)                      # one BGR uint8 frame -> Poses
        for result in estimator.stream(open_source("0"), policy="latest"):
            print(result.index, len(result.poses))

`stream()` runs three stages in their own threads, joined by bounded queues:
capture (the source) -> infer (preprocess + backend) -> decode; the caller receives results in
frame order. Policy `all` never drops a frame (files); `latest` drops the oldest waiting frame
when inference falls behind, so latency stays bounded on live cameras, and counts every drop.
An exception in any stage stops every stage and is re-raised to the caller; leaving the loop
early, Ctrl-C or the end of the input stop and join every thread.

Frames the network cannot take as they are follow one documented rule (`coerce_frame`):
grayscale and 1-channel become BGR, BGRA drops alpha, 16-bit is scaled to 8-bit (>> 8), float
is taken as 0..1 and scaled to 0..255; None, empty or other shapes are skipped. Either way the
frame is counted and the stream goes on.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

from edge.backends import Backend, open_backend
from edge.decode import Decoder
from edge.decode.poses import Poses
from edge.preprocess import validate_frame
from edge.sources import Source

log = logging.getLogger("bkpose")
POLICIES = ("all", "latest")
_END = object()


@dataclass
class Result:
    """One frame's output, in frame order."""

    index: int
    timestamp: float
    source_size: Tuple[int, int]  # (width, height); (0, 0) for a skipped frame
    poses: Poses
    timings_ms: Dict[str, float] = field(default_factory=dict)
    counters: Dict[str, int] = field(default_factory=dict)
    skipped: str = ""  # why the frame was not processed ("" when it was)
    converted: str = ""  # the conversion rule applied to the frame, if any
    image: Optional[np.ndarray] = None  # the (converted) frame, for drawing
    name: str = ""


def empty_poses() -> Poses:
    return Poses(np.zeros((0, 17, 3), np.float32), np.zeros((0,), np.float32))


def coerce_frame(image: Any) -> Tuple[Optional[np.ndarray], str]:
    """(BGR uint8 frame or None, what was done). See the module docstring for the rule."""
    if image is None:
        return None, "skipped: no frame"
    if not isinstance(image, np.ndarray):
        return None, f"skipped: not an image ({type(image).__name__})"
    if image.size == 0:
        return None, "skipped: empty frame"
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        return None, f"skipped: unsupported shape {image.shape}"
    note = []
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
        note.append("16-bit scaled to 8-bit")
    elif np.issubdtype(image.dtype, np.floating):
        image = (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        note.append("float 0..1 scaled to 0..255")
    elif image.dtype != np.uint8:
        return None, f"skipped: unsupported dtype {image.dtype}"
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
        note.append("grayscale to BGR")
    elif image.shape[2] == 4:
        image = image[:, :, :3]
        note.append("BGRA to BGR")
    return image, ", ".join(note)


class PoseEstimator:
    """Model file in, people out. `device`: "auto" (GPU backend if available), "cpu" or "cuda"."""

    def __init__(
        self, model_path: str, device: str = "auto", threads: int = 0, **decoder_params: Any
    ) -> None:
        options: Dict[str, Any] = {"threads": threads} if str(model_path).endswith(".onnx") else {}
        self.backend: Backend = open_backend(str(model_path), device=device, **options)
        self.info = self.backend.info
        if not self.info.trained:
            log.warning("%s is untrained (random weights): the poses it finds are not people", model_path)
        self.decoder = Decoder(self.info.layout, **decoder_params)
        self.decoder_params = decoder_params
        self.preprocessor = self._make_preprocessor()
        shape = tuple(d if isinstance(d, int) else 1 for d in self.backend.input.shape)
        self.host_input = np.zeros(shape, np.float32)  # host input of the CPU path

    def _make_preprocessor(self) -> Any:
        """The fused CUDA kernel writing into the TensorRT input binding when the backend is a
        TensorRT engine; the CPU reference (into a host array) for ONNX Runtime."""
        from edge.preprocess import make_preprocessor

        device = getattr(self.backend, "device", None) if hasattr(self.backend, "enqueue") else None
        if device is None:
            return make_preprocessor(self.info)
        with device.active():
            return make_preprocessor(self.info, device, self.backend.input.dtype)

    def run_model(
        self, image: np.ndarray, host_input: np.ndarray
    ) -> Tuple[np.ndarray, Any, Dict[str, float]]:
        """Preprocess and infer one BGR frame: (heatmaps [50, H, W], letterbox, stage times in ms)."""
        backend = self.backend
        t0 = time.perf_counter()
        if hasattr(backend, "enqueue"):  # TensorRT: kernel -> engine -> pinned output, one stream
            stream = backend.stream
            with backend.device.active():
                backend.start.record(stream)
                lb = self.preprocessor(image, backend.input_ptr, stream)
                backend.after_upload.record(stream)
                t1 = time.perf_counter()
                backend.enqueue(stream)
                backend.after_infer.record(stream)
                host = backend.download(stream)
                backend.end.record(stream)
                stream.synchronize()
                heatmaps = np.array(host[0])  # the pinned buffer is reused by the next frame
                gpu = backend.stage_times()
            timings = {"preprocess_gpu": gpu["upload_gpu_ms"], "infer_gpu": gpu["infer_gpu_ms"],
                       "download_gpu": gpu["download_gpu_ms"]}  # fmt: skip
        else:
            _, lb = self.preprocessor(image, host_input)
            t1 = time.perf_counter()
            heatmaps = backend.infer(host_input)[0]
            timings = {}
        t2 = time.perf_counter()
        timings.update(preprocess=(t1 - t0) * 1e3, infer=(t2 - t1) * 1e3)
        return heatmaps, lb, timings

    # ------------------------------------------------------------------ one frame
    def warmup(self) -> Dict[str, float]:
        """Compile the Numba code and run the model once; returns the seconds each took."""
        decode_s = self.decoder.warmup()
        _, _, timings = self.run_model(np.zeros((8, 8, 3), np.uint8), self.host_input)  # one pass: both timed
        return {"decoder_compile_s": decode_s, "first_inference_s": timings["infer"] / 1e3,
                "preprocess_compile_s": timings["preprocess"] / 1e3}  # fmt: skip

    def __call__(self, frame: np.ndarray) -> Poses:
        """People in one BGR uint8 frame (raises FrameError for anything else)."""
        heatmaps, lb, _ = self.run_model(validate_frame(frame), self.host_input)
        return self.decoder.decode(heatmaps, lb)

    # ------------------------------------------------------------------ many frames
    def stream(self, source: Source, policy: Optional[str] = None, queue_size: int = 2) -> Iterator[Result]:
        """Results for every frame of `source`, in order, with capture, inference and decoding
        overlapping in threads. `policy` defaults to `latest` for live sources, `all` otherwise."""
        policy = policy or ("latest" if source.live else "all")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, found {policy!r}")
        runner = _Runner(self, source, policy, queue_size)
        return runner.results()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Runner:
    """The three stage threads of one `stream()` call and the queues between them."""

    def __init__(self, estimator: PoseEstimator, source: Source, policy: str, queue_size: int) -> None:
        self.estimator, self.source, self.policy = estimator, source, policy
        self.captured: queue.Queue = queue.Queue(maxsize=max(queue_size, 1))
        self.inferred: queue.Queue = queue.Queue(maxsize=max(queue_size, 1))
        self.results_q: queue.Queue = queue.Queue(maxsize=max(queue_size, 1) * 2)
        self.stop = threading.Event()
        self.failure: Optional[BaseException] = None  # the first exception of any stage
        self.dropped = 0
        self.skipped = 0
        self.converted = 0
        self.lock = threading.Lock()
        stages = (("capture", self._capture, self.captured), ("infer", self._infer, self.inferred),
                  ("decode", self._decode, self.results_q))  # fmt: skip
        self.threads = [
            threading.Thread(target=self._guard, args=(stage, out), name=f"bkpose-{name}", daemon=True)
            for name, stage, out in stages
        ]

    # ---------------------------------------------------------------- plumbing
    def _put(self, q: queue.Queue, item: Any) -> bool:
        """Blocking put that gives up when the run is stopping; False if it gave up."""
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue) -> Any:
        while True:
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                if self.stop.is_set():
                    return _END

    def _guard(self, stage: Any, downstream: queue.Queue) -> None:
        """Run a stage; on an exception pass it downstream (to the caller) and stop everything."""
        try:
            stage()
        except BaseException as err:  # re-raised in the caller's thread
            with self.lock:
                if self.failure is None:
                    self.failure = err
            self._put_final(downstream, _Failure(err))
            self.stop.set()

    def _put_final(self, q: queue.Queue, item: Any) -> None:
        """Pass the end marker on after everything queued; a failure jumps the queue (the items
        waiting are dropped: the run is over and the caller gets the exception next)."""
        if item is _END:
            self._put(q, item)
            return
        while True:
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    q.get_nowait()

    # ---------------------------------------------------------------- stages
    def _capture(self) -> None:
        read_start = time.perf_counter()
        for frame in self.source:
            read_ms = (time.perf_counter() - read_start) * 1e3
            if self.stop.is_set():
                break
            item = (frame, read_ms)
            if self.policy == "latest":
                while True:
                    try:
                        self.captured.put_nowait(item)
                        break
                    except queue.Full:
                        try:
                            stale = self.captured.get_nowait()
                            if stale is not _END and not isinstance(stale, _Failure):
                                with self.lock:
                                    self.dropped += 1
                        except queue.Empty:
                            pass
            elif not self._put(self.captured, item):
                break
            read_start = time.perf_counter()
        self._put_final(self.captured, _END)

    def _infer(self) -> None:
        est = self.estimator
        buffer = np.zeros_like(est.host_input)
        while True:
            item = self._get(self.captured)
            if item is _END or isinstance(item, _Failure):
                self._put_final(self.inferred, item)
                return
            frame, read_ms = item
            image, note = coerce_frame(frame.image)
            if image is None:
                reason = frame.error or note
                with self.lock:
                    self.skipped += 1
                if not self._put(self.inferred, (frame, None, None, None, {"read": read_ms}, reason, "")):
                    return
                continue
            if note:
                with self.lock:
                    self.converted += 1
            heatmaps, lb, timings = est.run_model(image, buffer)
            timings["read"] = read_ms
            if not self._put(self.inferred, (frame, image, heatmaps, lb, timings, "", note)):
                return

    def _decode(self) -> None:
        decoder = Decoder(self.estimator.info.layout, **self.estimator.decoder_params)  # own work arrays
        while True:
            item = self._get(self.inferred)
            if item is _END or isinstance(item, _Failure):
                self._put_final(self.results_q, item)
                return
            frame, image, heatmaps, lb, timings, reason, note = item
            if image is None:
                result = Result(frame.index, frame.timestamp, (0, 0), empty_poses(), timings, skipped=reason,
                                name=frame.name)  # fmt: skip
            else:
                t0 = time.perf_counter()
                poses = decoder.decode(heatmaps, lb)
                timings["decode"] = (time.perf_counter() - t0) * 1e3
                timings.update(decoder.last_timings)
                timings["latency"] = (time.time() - frame.timestamp) * 1e3
                height, width = image.shape[:2]
                result = Result(frame.index, frame.timestamp, (width, height), poses, timings,
                                converted=note, image=image, name=frame.name)  # fmt: skip
            result.counters = self.counters()
            if not self._put(self.results_q, result):
                return

    def counters(self) -> Dict[str, int]:
        with self.lock:
            counts = {"dropped": self.dropped, "skipped": self.skipped, "converted": self.converted}
        stats = self.source.stats
        counts.update(unreadable=stats.unreadable, reopens=stats.reopens)
        return counts

    # ---------------------------------------------------------------- the caller's side
    def results(self) -> Iterator[Result]:
        for thread in self.threads:
            thread.start()
        try:
            while True:
                item = self._get(self.results_q)
                if item is _END or isinstance(item, _Failure):
                    break
                yield item
            if self.failure is not None:  # stages that were stopping may not have passed it on
                raise self.failure
        finally:
            self.shutdown()

    def shutdown(self, timeout: float = 10.0) -> None:
        self.stop.set()
        self.source.close()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            if thread.is_alive():
                thread.join(max(deadline - time.monotonic(), 0.1))
