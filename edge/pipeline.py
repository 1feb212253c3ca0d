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
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from edge import stages
from edge.backends import Backend, open_backend
from edge.decode import Decoder
from edge.decode.poses import Poses
from edge.errors import ModelError
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
    then owns. The decoder takes the model's own constants (`ModelInfo.decoder`), then
    `decoder_params` over them.

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
            self.decoder_params = {**self.info.decoder, **decoder_params}
            try:
                self.decoder = Decoder(self.info.layout, **self.decoder_params)
            except (TypeError, ValueError) as err:
                if set(decoder_params) >= set(self.info.decoder):
                    raise  # the caller's own values
                raise ModelError(
                    f"{self.backend.path or model}: its decoder constants {self.info.decoder} do not "
                    f"fit this runtime ({err}); re-export the model"
                ) from None
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

    def choose_batch(self, streams: int, frame_size: Tuple[int, int] = (1280, 720), repeats: int = 3) -> int:
        """The batch that pays for `streams` cameras on this backend: 1 where the model's batch
        axis is fixed, else the size among 1, 2, 4, ... <= `streams` (and the backend's
        `max_batch`) with the least time per frame over `repeats` timed `run_batch` calls (a batch
        does not pay on a 2-core CPU; it does on a GPU). Returns the sizes' ms per frame in
        `self.batch_trials`."""
        self.batch_trials: Dict[int, float] = {}
        if isinstance(self.backend.input.shape[0], int) or streams <= 1:
            return 1
        rng = np.random.default_rng(0)
        width, height = frame_size
        frames = [rng.integers(0, 255, (height, width, 3), np.uint8) for _ in range(streams)]
        size, largest = 1, min(streams, self.backend.max_batch or streams)
        while size <= largest:
            self.backend.run_batch(frames[:size])  # warm this shape
            start = time.perf_counter()
            for _ in range(repeats):
                self.backend.run_batch(frames[:size])
            self.batch_trials[size] = (time.perf_counter() - start) * 1e3 / (repeats * size)
            size *= 2
        return min(self.batch_trials, key=self.batch_trials.__getitem__)

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
        runner = _Runner(self, {"": source}, policy, queue_size, lambda _name: tuple(stages))
        return runner.results()

    def stream_many(
        self,
        sources: Mapping[str, Source],
        policy: Optional[str] = None,
        queue_size: int = 2,
        batch: int = 1,
        wait_ms: float = 5.0,
        stages: Callable[[str], Sequence[ResultStage]] = lambda name: (),
    ) -> Iterator[Result]:
        """Results of several named sources (cameras) in one run, each tagged with its `stream`.
        One capture thread per source, each with its own policy queue, drop counters and
        reconnection; a batcher that, as DeepStream's nvstreammux, takes up to `batch` ready
        frames (one per stream, streams in turn) within `wait_ms` into one `run_batch` call; then
        decoding and each stream's own `stages(name)` (a tracker per stream). A source that fails
        ends its stream, logged, while the others go on. The batch sizes used are counted in
        `self.batch_sizes` of the last run."""
        if not sources:
            raise ValueError("stream_many needs at least one source")
        live = any(src.live for src in sources.values())
        policy = policy or ("latest" if live else "all")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, found {policy!r}")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, found {batch}")
        runner = _MultiRunner(self, dict(sources), policy, queue_size, batch, wait_ms / 1e3, stages)
        self.batch_sizes = runner.batch_sizes
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
    stream: str = ""  # the source's name when several run at once


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _zero_counts() -> Dict[str, int]:
    return {"dropped": 0, "skipped": 0, "converted": 0}


class _Runner:
    """The stage threads of one `stream()` call and the queues between them: capture, infer and
    decode, each in its own thread. Streams are keyed by name ("" for `stream()`'s one source)."""

    def __init__(
        self,
        estimator: PoseEstimator,
        sources: Dict[str, Source],
        policy: str,
        queue_size: int,
        stages_of: Callable[[str], Sequence[ResultStage]],
    ) -> None:
        size = max(queue_size, 1)
        self.estimator, self.sources, self.policy = estimator, sources, policy
        self.slots = {name: queue.Queue(maxsize=size) for name in sources}  # captured frames
        self.inferred: queue.Queue = queue.Queue(maxsize=size * len(sources))
        self.results_q: queue.Queue = queue.Queue(maxsize=size * 2 * len(sources))
        self.stop = threading.Event()
        self.failure: Optional[BaseException] = None  # the first exception of any stage
        self.counts = {name: _zero_counts() for name in sources}
        self.per_stream = {name: tuple(stages_of(name)) for name in sources}
        self.lock = threading.Lock()
        self.threads = self._threads()

    def _threads(self) -> List[threading.Thread]:
        [(name, source)] = self.sources.items()
        stages = (
            ("capture", lambda: self._capture(source, self.slots[name], name), self.slots[name]),
            ("infer", self._infer, self.inferred),
            ("decode", self._decode, self.results_q),
        )
        return [
            threading.Thread(target=self._guard, args=(stage, out), name=f"bkpose-{what}", daemon=True)
            for what, stage, out in stages
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
    def _count(self, stream: str, what: str) -> None:
        with self.lock:
            self.counts[stream][what] += 1

    def _capture(self, source: Source, captured: queue.Queue, stream: str = "") -> None:
        """Frames of `source` into `captured`: the newest replaces the oldest waiting under
        `latest` (counted as dropped), the reader waits under `all`."""
        read_start = time.perf_counter()
        for frame in source:
            read_ms = (time.perf_counter() - read_start) * 1e3
            if self.stop.is_set():
                break
            item = (frame, read_ms)
            if self.policy == "latest":
                while True:
                    try:
                        captured.put_nowait(item)
                        break
                    except queue.Full:
                        try:
                            stale = captured.get_nowait()
                            if stale is not _END and not isinstance(stale, _Failure):
                                self._count(stream, "dropped")
                        except queue.Empty:
                            pass
            elif not self._put(captured, item):
                break
            read_start = time.perf_counter()
        self._put_final(captured, _END)

    def _infer(self) -> None:
        backend, (captured,) = self.estimator.backend, self.slots.values()
        while True:
            item = self._get(captured)
            if item is _END or isinstance(item, _Failure):
                self._put_final(self.inferred, item)
                return
            frame, read_ms = item
            image, note = self._coerce(frame)
            if image is None:
                skipped = _Inferred(frame, None, None, None, {stages.READ: read_ms}, note, "")
                if not self._put(self.inferred, skipped):
                    return
                continue
            heatmaps, lb, timings = backend.run(image)
            timings[stages.READ] = read_ms
            if not self._put(self.inferred, _Inferred(frame, image, heatmaps, lb, timings, "", note)):
                return

    def _coerce(self, frame: Any, stream: str = "") -> Tuple[Optional[np.ndarray], str]:
        """The frame's image in a form the model takes, counting conversions and skips; (None, why)
        when it cannot be used."""
        image, note = coerce_frame(frame.image)
        if image is None:
            self._count(stream, "skipped")
            return None, frame.error or note
        if note:
            self._count(stream, "converted")
        return image, note

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
                                skipped=item.skipped, name=frame.name, stream=item.stream)  # fmt: skip
            else:
                t0 = time.perf_counter()
                poses = decoder.decode(item.heatmaps, item.letterbox)
                timings[stages.DECODE] = (time.perf_counter() - t0) * 1e3
                timings.update(decoder.last_timings)
                timings[stages.LATENCY] = (time.time() - frame.timestamp) * 1e3
                height, width = item.image.shape[:2]
                result = Result(frame.index, frame.timestamp, (width, height), poses, timings,
                                converted=item.converted, image=item.image, name=frame.name,
                                stream=item.stream)  # fmt: skip
            result.counters = self.counters(item.stream)
            for stage in self.per_stream[item.stream]:  # per-stream steps after decoding, each timed
                t0 = time.perf_counter()
                result = stage(result)
                result.timings_ms[stage.name] = (time.perf_counter() - t0) * 1e3
            if not self._put(self.results_q, result):
                return

    def counters(self, stream: str = "") -> Dict[str, int]:
        with self.lock:
            counts = dict(self.counts[stream])
        stats = self.sources[stream].stats
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
        for source in self.sources.values():
            source.close()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            if thread.is_alive():
                thread.join(max(deadline - time.monotonic(), 0.1))


class _MultiRunner(_Runner):
    """`stream_many`: a capture thread per source, one batching inference thread, one decoder."""

    def __init__(
        self,
        estimator: PoseEstimator,
        sources: Dict[str, Source],
        policy: str,
        queue_size: int,
        batch: int,
        wait_s: float,
        stages_of: Callable[[str], Sequence[ResultStage]],
    ) -> None:
        self.batch, self.wait_s = batch, wait_s
        self.batch_sizes: Dict[int, int] = {}
        super().__init__(estimator, sources, policy, queue_size, stages_of)

    def _threads(self) -> List[threading.Thread]:
        threads = [
            threading.Thread(target=self._guard_stream, args=(n,), name=f"bkpose-capture-{n}", daemon=True)
            for n in self.sources
        ]
        return threads + [
            threading.Thread(target=self._guard, args=(self._infer, self.inferred), name="bkpose-batch",
                             daemon=True),
            threading.Thread(target=self._guard, args=(self._decode, self.results_q), name="bkpose-decode",
                             daemon=True),
        ]  # fmt: skip

    def _guard_stream(self, name: str) -> None:
        """One source's capture: its failure ends its stream only."""
        try:
            self._capture(self.sources[name], self.slots[name], name)
        except Exception as err:  # a camera gone for good, a corrupt file: the others go on
            log.warning("stream %s stopped: %s", name, err)
            self._put_final(self.slots[name], _END)

    def _gather(self, turn: int, finished: set) -> List[Tuple[str, Any]]:
        """Up to `batch` ready frames, at most one per stream, streams in turn from `turn`;
        waits for the first, then up to `wait_s` for more. Empty when every stream has ended."""
        names = list(self.sources)
        taken: List[Tuple[str, Any]] = []
        deadline = None
        while not self.stop.is_set():
            for k in range(len(names)):
                name = names[(turn + k) % len(names)]
                if name in finished or any(name == n for n, _ in taken):
                    continue
                try:
                    item = self.slots[name].get_nowait()
                except queue.Empty:
                    continue
                if item is _END:
                    finished.add(name)
                    continue
                taken.append((name, item))
                if len(taken) == self.batch:
                    return taken
            waiting = [n for n in names if n not in finished and all(n != t for t, _ in taken)]
            now = time.monotonic()
            if taken and (not waiting or (deadline is not None and now >= deadline)):
                return taken
            if not taken and len(finished) == len(names):
                return []
            if taken and deadline is None:
                deadline = now + self.wait_s
            time.sleep(0.0005)
        return []

    def _infer(self) -> None:
        backend, finished, turn = self.estimator.backend, set(), 0
        while True:
            taken = self._gather(turn, finished)
            turn = (turn + 1) % len(self.sources)
            if not taken:
                self._put_final(self.inferred, _END)
                return
            ready = []
            for name, (frame, read_ms) in taken:
                image, note = self._coerce(frame, name)
                if image is None:
                    skipped = _Inferred(frame, None, None, None, {stages.READ: read_ms}, note, "", name)
                    if not self._put(self.inferred, skipped):
                        return
                else:
                    ready.append((name, frame, read_ms, image, note))
            if not ready:
                continue
            heatmaps, boxes, times = backend.run_batch([r[3] for r in ready])
            with self.lock:
                self.batch_sizes[len(ready)] = self.batch_sizes.get(len(ready), 0) + 1
            for (name, frame, read_ms, image, note), maps, lb in zip(ready, heatmaps, boxes):
                timings = dict(times)  # the batch's times, shared by its frames
                timings[stages.READ] = read_ms
                if not self._put(self.inferred, _Inferred(frame, image, maps, lb, timings, "", note, name)):
                    return
