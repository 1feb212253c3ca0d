"""Tracking sequences with known identities, built from real annotated people.

There is no pose tracking ground truth in ../shared/data, so each sequence moves real COCO poses
(dev538 people with at least 12 labelled keypoints, each keeping its own shape) along smooth
random trajectories across a 1280x720 stage, and then degrades what a detector would report:
- people walk in from the left or right edge and out the other side, at 40 to 160 px/s, with a
  slow vertical drift and a scale that breathes by up to 15 %, so paths cross;
- the person nearer the camera (lower feet) hides the keypoints of anyone behind that fall inside
  their box;
- per-keypoint Gaussian noise (a fraction of the person's height), missed keypoints, missed people,
  false people (a random pose at a random place) and dropped frames, each at a set rate.
Each frame holds the ground truth (every person with 3+ keypoints in view and not hidden, with
those keypoints) and the detections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

from benchmarks.common import DEV538_ANNOTATIONS

STAGE = (1280, 720)
FPS = 30.0


@dataclass(frozen=True)
class SceneParams:
    people: int = 6  # on stage at once, on average
    seconds: float = 20.0
    noise: float = 0.01  # keypoint noise, fraction of the person's height
    keypoint_miss: float = 0.1
    person_miss: float = 0.05
    false_people: float = 0.1  # expected false detections per frame
    frame_drop: float = 0.05
    seed: int = 0


@dataclass
class SceneFrame:
    time: float
    truth_ids: np.ndarray  # [G]
    truth: np.ndarray  # [G, 17, 3] what can be seen of each person in view (score 0: hidden)
    detections: np.ndarray  # [D, 17, 3], score 0 = not found
    detection_truth: np.ndarray  # [D] ground truth id of each detection, -1 for a false one


def load_templates(path: Path = DEV538_ANNOTATIONS, min_keypoints: int = 12) -> List[np.ndarray]:
    """Real poses, each [17, 3] relative to its feet centre, scaled to 1 unit of height."""
    with open(path) as f:
        data = json.load(f)
    templates = []
    for ann in data["annotations"]:
        kps = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)
        if ann.get("iscrowd") or (kps[:, 2] > 0).sum() < min_keypoints:
            continue
        found = kps[:, 2] > 0
        height = np.ptp(kps[found, 1])
        if height < 40:
            continue
        base = np.array([kps[found, 0].mean(), kps[found, 1].max()])
        pose = np.zeros((17, 3))
        pose[found, :2] = (kps[found, :2] - base) / height
        pose[found, 2] = 1.0
        templates.append(pose)
    if not templates:
        raise ValueError(f"{path}: no person with {min_keypoints}+ keypoints")
    return templates


class _Walker:
    def __init__(self, ident: int, start: float, rng: np.random.Generator, templates: List[np.ndarray]):
        self.id = ident
        self.pose = templates[rng.integers(len(templates))]
        self.height = rng.uniform(150, 330)
        self.direction = rng.choice((-1.0, 1.0))
        self.speed = rng.uniform(40, 160)
        self.x0 = -60.0 if self.direction > 0 else STAGE[0] + 60.0
        self.y0 = rng.uniform(self.height + 20, STAGE[1] - 10)
        self.drift = rng.normal(0, 8)
        self.phase = rng.uniform(0, 2 * np.pi)
        self.start = start
        self.end = start + (STAGE[0] + 120) / self.speed

    def keypoints(self, t: float) -> np.ndarray:
        dt = t - self.start
        scale = self.height * (1 + 0.15 * np.sin(self.phase + 0.4 * dt))
        feet = np.array([self.x0 + self.direction * self.speed * dt, self.y0 + self.drift * dt])
        out = self.pose.copy()
        found = out[:, 2] > 0
        out[found, :2] = out[found, :2] * scale + feet
        return out


def _in_view(pose: np.ndarray) -> np.ndarray:
    x, y = pose[:, 0], pose[:, 1]
    return (pose[:, 2] > 0) & (x >= 0) & (x < STAGE[0]) & (y >= 0) & (y < STAGE[1])


def occlude(people: List[np.ndarray]) -> List[np.ndarray]:
    """Hide each person's keypoints that fall inside the box of someone nearer (lower feet)."""
    out = [p.copy() for p in people]
    boxes = []
    for p in people:
        xy = p[p[:, 2] > 0, :2]
        boxes.append((xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()))
    for i, p in enumerate(out):
        for j, box in enumerate(boxes):
            if i == j or boxes[j][3] <= boxes[i][3]:  # j must be nearer (feet lower)
                continue
            x0, y0, x1, y1 = box
            inside = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
            p[inside] = 0.0
    return out


def scene(params: SceneParams, templates: Optional[List[np.ndarray]] = None) -> List[SceneFrame]:
    rng = np.random.default_rng(params.seed)
    templates = templates or load_templates()
    walkers: List[_Walker] = []
    next_id = 1
    # arrivals so that about `people` are on stage: a crossing takes ~ (1400 px / 100 px/s)
    rate = params.people / ((STAGE[0] + 120) / 100.0)
    arrival = 0.0
    frames = []
    for index in range(int(params.seconds * FPS)):
        t = index / FPS
        if index == 0:  # start with the stage populated
            for _ in range(params.people):
                w = _Walker(next_id, 0.0, rng, templates)
                w.start -= rng.uniform(0, w.end - w.start)  # already part-way across
                w.end = w.start + (STAGE[0] + 120) / w.speed
                walkers.append(w)
                next_id += 1
            arrival = rng.exponential(1 / rate)
        while arrival <= t:
            walkers.append(_Walker(next_id, arrival, rng, templates))
            next_id += 1
            arrival += rng.exponential(1 / rate)
        walkers = [w for w in walkers if w.end > t]
        on_stage = [w for w in walkers if w.start <= t]
        seen = occlude([w.keypoints(t) for w in on_stage])
        for pose in seen:
            pose[~_in_view(pose)] = 0.0
        visible = [i for i, pose in enumerate(seen) if (pose[:, 2] > 0).sum() >= 3]
        on_stage, seen = [on_stage[i] for i in visible], [seen[i] for i in visible]
        if rng.random() < params.frame_drop:
            continue
        detections, owners = [], []
        for w, pose in zip(on_stage, seen):
            if rng.random() < params.person_miss:
                continue
            found = (pose[:, 2] > 0) & (rng.random(17) >= params.keypoint_miss)
            if found.sum() < 3:
                continue  # a detector reports nobody from two points
            det = np.zeros((17, 3))
            det[found, :2] = pose[found, :2] + rng.normal(0, params.noise * w.height, (int(found.sum()), 2))
            det[found, 2] = rng.uniform(0.3, 1.0, int(found.sum()))
            detections.append(det)
            owners.append(w.id)
        for _ in range(rng.poisson(params.false_people)):
            fake = _Walker(-1, t, rng, templates)
            fake.x0 = rng.uniform(0, STAGE[0])
            detections.append(fake.keypoints(t) * np.array([1, 1, rng.uniform(0.3, 1.0)]))
            owners.append(-1)
        order = rng.permutation(len(detections))  # the decoder's order means nothing
        frames.append(
            SceneFrame(
                time=t,
                truth_ids=np.array([w.id for w in on_stage], np.int64),
                truth=np.array(seen).reshape(-1, 17, 3),
                detections=np.array(detections).reshape(-1, 17, 3)[order],
                detection_truth=np.array(owners, np.int64)[order],
            )
        )
    return frames


def crossings(frames: List[SceneFrame]) -> int:
    """Pairs of people whose left-right order swaps while their vertical extents overlap."""
    side = {}
    count = 0
    for f in frames:
        centre = {}
        for i, k in zip(f.truth_ids, f.truth):
            xy = k[k[:, 2] > 0, :2]
            centre[int(i)] = (xy[:, 0].mean(), xy[:, 1].min(), xy[:, 1].max())
        ids = sorted(centre)
        for a_pos, a in enumerate(ids):
            for b in ids[a_pos + 1 :]:
                (xa, ta, ba), (xb, tb, bb) = centre[a], centre[b]
                if min(ba, bb) <= max(ta, tb):
                    continue
                now = xa < xb
                if (a, b) in side and side[(a, b)] != now:
                    count += 1
                side[(a, b)] = now
    return count
