"""Pose tracking on sequences with known identities (`benchmarks.tracking_scenes`): identity
metrics over a grid of noise and crowd levels, jitter and lag of the smoothing, time per frame,
and IDs per visible person on the real videos in ../shared/data/videos.

    python -m benchmarks.tracking [--seconds 20] [--json results/tracking.json]

Identities are scored with motmetrics (IDF1, ID switches, MOTA, fragmentations): a ground truth
person and a confirmed track match where their OKS is at least 0.5. ID switches are also given
per 100 crossings (pairs whose left-right order swaps while they overlap vertically). Each cell
also scores the detections with their true identities ("true IDs"): what misses, hidden people and
the confirmation delay cost before any tracking decision.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import RESULTS_DIR, SHARED_DATA, time_stats, write_json
from benchmarks.tracking_scenes import FPS, SceneFrame, SceneParams, crossings, load_templates, scene
from edge.decode.agreement import oks_matrix
from edge.decode.poses import Poses
from edge.smoothing import OneEuro
from edge.tracking import PoseTracker, TrackerParams

MATCH_OKS = 0.5
NOISES = (0.005, 0.01, 0.02)
CROWDS = (2, 6, 12)
TARGETS = {"idf1": 0.95, "switches_per_100_crossings": 1.0, "jitter_reduction": 3.0, "lag_frames": 1.0,
           "ms_at_10": 0.2, "ms_at_40": 1.0}  # fmt: skip


def run_tracker(frames: List[SceneFrame], params: TrackerParams) -> List[Poses]:
    tracker = PoseTracker(params)
    out = []
    for f in frames:
        poses = Poses(f.detections.astype(np.float32), np.ones(len(f.detections), np.float32))
        out.append(tracker.update(poses, f.time))
    return out


def oracle(frames: List[SceneFrame]) -> List[Poses]:
    """Every true detection with its true identity, from its first frame: the best any tracker
    could score on these detections (misses and hidden people cost it too)."""
    out = []
    for f in frames:
        real = f.detection_truth >= 0
        kps = f.detections[real].astype(np.float32)
        out.append(Poses(kps, np.ones(len(kps), np.float32), track_ids=f.detection_truth[real]))
    return out


def identity_metrics(frames: List[SceneFrame], tracked: List[Poses]) -> Dict[str, float]:
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for f, poses in zip(frames, tracked):
        confirmed = poses.track_ids >= 0
        hyp = poses.keypoints[confirmed]
        oks = oks_matrix(f.truth, hyp) if len(f.truth) and len(hyp) else np.zeros((len(f.truth), len(hyp)))
        dist = np.where(oks >= MATCH_OKS, 1.0 - oks, np.nan)
        acc.update(f.truth_ids.tolist(), poses.track_ids[confirmed].tolist(), dist)
    names = ["idf1", "num_switches", "mota", "num_fragmentations", "num_objects", "num_unique_objects"]
    row = mm.metrics.create().compute(acc, metrics=names, name="scene").iloc[0]
    return {name: float(row[name]) for name in names}


def grid(seconds: float, params: TrackerParams, templates: List[np.ndarray]) -> List[Dict[str, Any]]:
    cells = []
    for noise in NOISES:
        for crowd in CROWDS:
            frames = scene(SceneParams(people=crowd, seconds=seconds, noise=noise, seed=crowd), templates)
            metrics = identity_metrics(frames, run_tracker(frames, params))
            metrics["oracle_idf1"] = identity_metrics(frames, oracle(frames))["idf1"]
            crossed = crossings(frames)
            metrics["crossings"] = crossed
            metrics["switches_per_100_crossings"] = 100.0 * metrics["num_switches"] / max(crossed, 1)
            cells.append({"noise": noise, "people": crowd, **metrics})
            print(f"noise {noise:5.3f}  people {crowd:2d}  IDF1 {metrics['idf1']:.3f} "
                  f"(true IDs: {metrics['oracle_idf1']:.3f})  "
                  f"switches {int(metrics['num_switches']):3d} ({metrics['switches_per_100_crossings']:.1f} "
                  f"per 100 of {crossed} crossings)  MOTA {metrics['mota']:.3f}  "
                  f"frag {int(metrics['num_fragmentations'])}", flush=True)  # fmt: skip
    return cells


def jitter_and_lag(params: TrackerParams, templates: List[np.ndarray]) -> Dict[str, float]:
    """A still person with the default noise: frame-to-frame keypoint motion, raw and smoothed.
    A person walking at 1.4 m/s (their height is 1.7 m): how many frames the smoothed keypoints
    trail the true ones, in steady state."""
    rng = np.random.default_rng(0)
    pose, height = templates[0], 300.0
    found = pose[:, 2] > 0
    still = pose.copy()
    still[found, :2] = pose[found, :2] * height + (640, 600)
    filt = OneEuro((17, 2), params.one_euro)
    raw, smooth = [], []
    for i in range(150):
        noisy = still[:, :2] + rng.normal(0, SceneParams().noise * height, (17, 2))
        raw.append(noisy)
        smooth.append(filt(noisy, i / FPS, found).copy())
    move = lambda seq: float(np.abs(np.diff(np.array(seq)[30:], axis=0))[:, found].mean())  # noqa: E731
    speed = 1.4 / 1.7 * height  # px/s
    filt = OneEuro((17, 2), params.one_euro)
    lags = []
    for i in range(150):
        t = i / FPS
        truth = still[:, :2] + (speed * t, 0.0)
        out = filt(truth, t, found)
        if i >= 60:
            lags.append(float((truth[found, 0] - out[found, 0]).mean()) / (speed / FPS))
    return {"jitter_raw_px": move(raw), "jitter_smoothed_px": move(smooth),
            "jitter_reduction": move(raw) / move(smooth), "lag_frames": float(np.mean(lags)),
            "walking_px_per_s": speed}  # fmt: skip


def timing(params: TrackerParams, templates: List[np.ndarray]) -> Dict[str, Dict[str, float]]:
    """Time per `update` with exactly 1, 10 and 40 people detected in every frame (the lowest
    ground-truth IDs of a crowded scene, so most keep their identity from frame to frame)."""
    crowd = scene(SceneParams(people=100, seconds=10, noise=0.01, false_people=0, person_miss=0,
                              frame_drop=0, seed=40), templates)  # fmt: skip
    out = {}
    for people in (1, 10, 40):
        tracker = PoseTracker(params)
        samples = []
        for f in crowd:
            chosen = np.argsort(f.detection_truth, kind="stable")[:people]
            poses = Poses(f.detections[chosen].astype(np.float32), np.ones(len(chosen), np.float32))
            start = time.perf_counter()
            tracker.update(poses, f.time)
            samples.append(time.perf_counter() - start)
        stats = time_stats(samples[30:])  # the first frames include Numba's cache load
        stats["people_mean"] = float(np.mean([min(people, len(f.detections)) for f in crowd]))
        out[str(people)] = stats
        print(f"time per frame, {stats['people_mean']:.0f} people: median {stats['median']:.3f} ms, "
              f"p90 {stats['p90']:.3f} ms", flush=True)  # fmt: skip
    return out


def real_videos(params: TrackerParams, model: Optional[str] = None) -> List[Dict[str, Any]]:
    """`model` (default: the default model) on each real video: distinct IDs over the most people
    seen in a frame."""
    from edge.default_model import default_onnx
    from edge.pipeline import PoseEstimator
    from edge.sources import open_source

    rows = []
    videos = sorted((SHARED_DATA / "videos").glob("*.mp4"))
    if not videos:
        return rows
    with PoseEstimator(model or default_onnx(print), device="cpu") as estimator:
        for video in videos:
            source = open_source(str(video))
            fps = source.fps or FPS
            tracker = PoseTracker(params, time_of=lambda r, fps=fps: r.index / fps)
            ids, most, frames = set(), 0, 0
            for result in estimator.stream(source, stages=[tracker]):
                confirmed = result.poses.track_ids[result.poses.track_ids >= 0]
                ids.update(int(i) for i in confirmed)
                most = max(most, len(result.poses))
                frames += 1
            per_person = len(ids) / most if most else None
            rows.append({"video": video.name, "frames": frames, "most_people_in_a_frame": most,
                         "distinct_ids": len(ids), "ids_per_visible_person": per_person})  # fmt: skip
            print(f"{video.name}: {frames} frames, up to {most} people, {len(ids)} IDs", flush=True)
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tracking", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="length of each grid sequence")
    p.add_argument("--no-videos", action="store_true", help="skip the real videos (no model run)")
    p.add_argument("--model", help="the model for the real videos (default: the default model)")
    p.add_argument("--json", default=str(RESULTS_DIR / "tracking.json"))
    args = p.parse_args(argv)
    params = TrackerParams()
    templates = load_templates()
    print(f"tracker {params}")
    result: Dict[str, Any] = {"params": dataclasses.asdict(params), "targets": TARGETS,
                              "templates": len(templates), "seconds": args.seconds}  # fmt: skip
    result["grid"] = grid(args.seconds, params, templates)
    result["smoothing"] = jitter_and_lag(params, templates)
    s = result["smoothing"]
    print(f"jitter {s['jitter_raw_px']:.2f} -> {s['jitter_smoothed_px']:.2f} px/frame "
          f"({s['jitter_reduction']:.1f}x less); lag {s['lag_frames']:.2f} frames "
          f"at {s['walking_px_per_s']:.0f} px/s")  # fmt: skip
    result["time_ms"] = timing(params, templates)
    result["videos"] = [] if args.no_videos else real_videos(params, args.model)
    print(f"JSON -> {write_json(args.json, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
