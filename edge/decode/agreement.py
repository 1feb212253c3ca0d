"""How far apart are two sets of poses for the same frame? COCO OKS between matched people.

Used to compare precisions (INT8 or FP16 against FP32) and backends: the reference poses play
the ground truth; each reference person is matched greedily (highest OKS first) to at most one
candidate. OKS follows pycocotools: exp(-d^2 / (2 s^2 k^2)) averaged over the reference
person's found keypoints, k = 2 sigma, s^2 = the area of the reference person's keypoint box.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from edge.decode.poses import Poses
from edge.layout import COCO_OKS_SIGMAS


def oks_matrix(
    reference: np.ndarray,
    candidate: np.ndarray,
    sigmas: Sequence[float] = COCO_OKS_SIGMAS,
) -> np.ndarray:
    """OKS of every (reference, candidate) pair; keypoints [N, K, 3] and [M, K, 3], score 0 = missing.
    Vectorised over all pairs."""
    ref = np.asarray(reference, np.float64)
    cand = np.asarray(candidate, np.float64)
    n, m = ref.shape[0], cand.shape[0]
    if n == 0 or m == 0:
        return np.zeros((n, m), np.float64)
    found = ref[:, :, 2] > 0  # [N, K]
    xy = ref[:, :, :2]
    low = np.where(found[..., None], xy, np.inf).min(axis=1)  # [N, 2]
    high = np.where(found[..., None], xy, -np.inf).max(axis=1)
    with np.errstate(invalid="ignore"):
        extent = np.where(found.any(axis=1)[:, None], high - low, 0.0)
    area = np.maximum(extent[:, 0] * extent[:, 1], 1.0)  # [N]
    k2 = (2.0 * np.asarray(sigmas, np.float64)) ** 2  # [K]
    d2 = ((cand[None, :, :, :2] - xy[:, None, :, :]) ** 2).sum(axis=3)  # [N, M, K]
    e = np.exp(-d2 / (2.0 * area[:, None, None] * k2))
    e *= found[:, None, :] & (cand[None, :, :, 2] > 0)
    return e.sum(axis=2) / np.maximum(found.sum(axis=1), 1)[:, None]


def match_oks(reference: Poses, candidate: Poses) -> np.ndarray:
    """OKS of each reference person with its greedy match (0 where unmatched)."""
    scores = oks_matrix(reference.keypoints, candidate.keypoints)
    best = np.zeros(len(reference), np.float64)
    used_ref, used_cand = set(), set()
    for flat in np.argsort(-scores, axis=None, kind="stable"):
        i, j = divmod(int(flat), scores.shape[1])
        if scores[i, j] <= 0:
            break
        if i in used_ref or j in used_cand:
            continue
        used_ref.add(i)
        used_cand.add(j)
        best[i] = scores[i, j]
    return best


def agreement(pairs: Iterable[tuple]) -> Dict[str, Optional[float]]:
    """Summary over frames of (reference Poses, candidate Poses): mean OKS and people counts."""
    oks, ref_people, cand_people = [], 0, 0
    for reference, candidate in pairs:
        oks.extend(match_oks(reference, candidate).tolist())
        ref_people += len(reference)
        cand_people += len(candidate)
    return {
        "mean_oks": float(np.mean(oks)) if oks else None,
        "reference_people": ref_people,
        "candidate_people": cand_people,
        "matched_oks_above_0.5": int(sum(o > 0.5 for o in oks)),
    }
