"""What a camera appliance calls: `PoseEstimator` for one frame, `stream()` for many, pipelined.

    with PoseEstimator("engines/bkpose.fp32.onnx") as estimator:
        estimator.warmup()
        poses = estimator(frame)                      # one BGR uint8 frame -> Poses
        for result in estimator.stream(open_source("0"), policy="latest"):
            print(result.index, len(result.poses))

`stream()` runs three stages in their own threads, joined by bounded queues:
capture (the source) -> infer (`backend.run`: preprocess + model, the backend's own device path)
-> decode, then the stream's `ResultStage`s (a tracker, a smoother: per-stream state, each timed
under its `edge.stages` name); the caller receives results in frame order. Several cameras add a
batcher between capture and infer (`backend.run_batch`) and one decode thread with its own result
stages per stream. Policy `all` never drops a frame (files); `latest` drops the oldest waiting frame
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
from typing import Any, Dict, Iterator, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from edge import stages
from edge.backends import Backend, open_backend
from edge.decode import Decoder
from edge.decode.poses import Poses
from edge.layout import require_compatible
from edge.preprocess import validate_frame
from edge.results import Result, ResultStage, empty_poses
from edge.sources import Source

log = logging.getLogger("bkpose")
POLICIES = ("all", "latest")
_END = object()


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
    """Model in, people out. `model`: a model file (opened with `device`: "auto" for the GPU backend
    where there is one, "cpu" or "cuda"; `backend` "ort" or "openvino" for an .onnx file, with
    `backend_options` such as OpenVINO's `precision`) or an open `Backend`, which the estimator
    then owns.

    It calls the backend's one method, `run(frame)`, and never asks what kind of backend it holds.
    """

    def __init__(
        self,
        model: Union[str, Backend],
        device: str = "auto",
        threads: int = 0,
        backend: str = "auto",
        backend_options: Optional[Dict[str, Any]] = None,
        **decoder_params: Any,
    ) -> None:
        if isinstance(model, Backend):
            self.backend = model
        else:
            options: Dict[str, Any] = {"threads": threads} if str(model).endswith(".onnx") else {}
            options.update(backend_options or {})
            self.backend = open_backend(str(model), device=device, backend=backend, **options)
        try:
            self.info = self.backend.info
            require_compatible(self.info.layout)
            if not self.info.trained:
                log.warning("%s is untrained (random weights): the poses it finds are not people",
                            self.backend.path or model)  # fmt: skip
            self.decoder = Decoder(self.info.layout, **decoder_params)
            self.decoder_params = decoder_params
        except BaseException:
            self.backend.close()  # nothing else holds it
            raise

    def process(self, frame: np.ndarray) -> Tuple[Poses, Dict[str, float]]:
        """People in one frame and every stage's time in ms (`edge.stages` names)."""
        heatmaps, lb, timings = self.backend.run(validate_frame(frame))
        poses = self.decoder.decode(heatmaps, lb)
        timings.update(self.decoder.last_timings)
        return poses, timings

    # ------------------------------------------------------------------ one frame
    def warmup(self) -> Dict[str, float]:
        """Compile the Numba code and run the model once; returns the seconds each took."""
        stride = self.info.layout.stride
        decode_s = self.decoder.warmup(self.info.input_height // stride, self.info.input_width // stride)
        _, _, timings = self.backend.run(np.zeros((8, 8, 3), np.uint8))  # one pass: both timed
        return {"decoder_compile_s": decode_s, "first_inference_s": timings[stages.INFER] / 1e3,
                "preprocess_compile_s": timings[stages.PREPROCESS] / 1e3}  # fmt: skip

    def __call__(self, frame: np.ndarray) -> Poses:
        """People in one BGR uint8 frame (raises FrameError for anything else)."""
        return self.process(frame)[0]

    # ------------------------------------------------------------------ many frames
    def stream(
        self,
        source: Source,
        policy: Optional[str] = None,
        queue_size: int = 2,
        stages: Sequence[ResultStage] = (),
    ) -> Iterator[Result]:
        """Results for every frame of `source`, in order, with capture, inference and decoding
        overlapping in threads. `policy` defaults to `latest` for live sources, `all` otherwise.
        `stages` run after decoding on every result, in order (per-stream: a tracker, a smoother)."""
        policy = policy or ("latest" if source.live else "all")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, found {policy!r}")
        runner = _Runner(self, source, policy, queue_size, tuple(stages))
        return runner.results()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Inferred(NamedTuple):
    """What the infer stage hands the decode stage for one frame."""

    frame: Any  # edge.sources.Frame
    image: Optional[np.ndarray]  # the converted frame; None when it was skipped
    heatmaps: Optional[np.ndarray]
    letterbox: Any
    timings: Dict[str, float]
    skipped: str  # why it was skipped ("" when it was not)
    converted: str  # the conversion applied ("" when none)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Runner:
    """The three stage threads of one `stream()` call and the queues between them."""

    def __init__(
        self,
        estimator: PoseEstimator,
        source: Source,
        policy: str,
        queue_size: int,
        result_stages: Tuple[ResultStage, ...] = (),
    ) -> None:
        self.estimator, self.source, self.policy = estimator, source, policy
        self.result_stages = result_stages
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
        backend = self.estimator.backend
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
                skipped = _Inferred(frame, None, None, None, {stages.READ: read_ms}, reason, "")
                if not self._put(self.inferred, skipped):
                    return
                continue
            if note:
                with self.lock:
                    self.converted += 1
            heatmaps, lb, timings = backend.run(image)
            timings[stages.READ] = read_ms
            if not self._put(self.inferred, _Inferred(frame, image, heatmaps, lb, timings, "", note)):
                return

    def _decode(self) -> None:
        decoder = Decoder(self.estimator.info.layout, **self.estimator.decoder_params)  # own work arrays
        while True:
            item = self._get(self.inferred)
            if item is _END or isinstance(item, _Failure):
                self._put_final(self.results_q, item)
                return
            frame, timings = item.frame, item.timings
            if item.image is None:
                result = Result(frame.index, frame.timestamp, (0, 0), empty_poses(), timings,
                                skipped=item.skipped, name=frame.name)  # fmt: skip
            else:
                t0 = time.perf_counter()
                poses = decoder.decode(item.heatmaps, item.letterbox)
                timings[stages.DECODE] = (time.perf_counter() - t0) * 1e3
                timings.update(decoder.last_timings)
                timings[stages.LATENCY] = (time.time() - frame.timestamp) * 1e3
                height, width = item.image.shape[:2]
                result = Result(frame.index, frame.timestamp, (width, height), poses, timings,
                                converted=item.converted, image=item.image, name=frame.name)  # fmt: skip
            result.counters = self.counters()
            for stage in self.result_stages:  # per-stream steps after decoding, each timed
                t0 = time.perf_counter()
                result = stage(result)
                result.timings_ms[stage.name] = (time.perf_counter() - t0) * 1e3
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
