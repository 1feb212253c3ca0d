"""A faithful port of Simple Pose's `evaluate.py` decoding (model_spec section 7): the anchor for
accuracy and speed. Not used at run time.

It bicubic-upsamples the 48 maps to the full image (x4, crop the letterbox, resize to W x H),
finds peaks with 3x3 max-pool NMS and the 5x5 centroid (keeping the reference's x/y swap unless
`fix_refine_swap`), scores limbs with nearest-pixel samples and assembles people exactly as
`find_people` does, in plain Python and numpy.

One deviation, to avoid a crash the reference can hit: limb sample indices are clipped to the
image (a refined peak near the border can round to one pixel outside it).
"""

from __future__ import annotations

from typing import List, Tuple

import cv2
import numpy as np

from edge.decode.poses import Poses
from edge.geometry import Letterbox
from edge.layout import BKPOSE_LAYOUT, Layout

THRE1 = 0.1
THRE2 = 0.1
MID_NUM = 20
CONNECT_RATION = 0.8
LEN_RATE = 16
CONNECTION_TOLE = 0.7
MIN_PARTS = 2
MIN_MEAN_SCORE = 0.45
OFFSET_RADIUS = 2


def upsample_to_image(maps_hwc: np.ndarray, lb: Letterbox, stride: int) -> np.ndarray:
    """Section 7.2: cubic x`stride`, crop the resized frame out of the letterbox, cubic to W x H."""
    up = cv2.resize(maps_hwc, (0, 0), fx=stride, fy=stride, interpolation=cv2.INTER_CUBIC)
    up = up[lb.pad_top : lb.pad_top + lb.resized_h, lb.pad_left : lb.pad_left + lb.resized_w]
    return cv2.resize(up, (lb.src_w, lb.src_h), interpolation=cv2.INTER_CUBIC).reshape(lb.src_h, lb.src_w, -1)


def find_peaks(heat: np.ndarray, num_parts: int, fix_refine_swap: bool) -> List[List[Tuple]]:
    """Section 7.3. Returns per part a list of (x, y, score, cid); cid is global, in part order."""
    peaks: List[List[Tuple]] = []
    cid = 0
    h, w = heat.shape[:2]
    for p in range(num_parts):
        m = heat[:, :, p]
        padded = np.pad(m, 1, mode="reflect")
        hmax = np.max(
            np.stack([padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]), axis=0
        )
        ys, xs = np.nonzero((hmax == m) & (m >= THRE1))
        part = []
        for y, x in zip(ys.tolist(), xs.tolist()):
            r0 = OFFSET_RADIUS
            if y - r0 < 0 or x - r0 < 0 or y + r0 + 1 > h or x + r0 + 1 > w:
                part.append((float(x), float(y), float(m[y, x]), cid))
            else:
                box = m[y - r0 : y + r0 + 1, x - r0 : x + r0 + 1]
                total = box.sum()
                grid_r, grid_c = np.mgrid[-r0 : r0 + 1, -r0 : r0 + 1]
                r = float((box * grid_r).sum() / total)  # row (vertical) offset
                c = float((box * grid_c).sum() / total)  # column offset
                if fix_refine_swap:
                    part.append((x + c, y + r, float(box.mean()), cid))
                else:  # the reference's quirk: offsets swapped
                    part.append((x + r, y + c, float(box.mean()), cid))
            cid += 1
        peaks.append(part)
    return peaks


def find_connections(paf: np.ndarray, peaks, layout: Layout, image_height: int):
    """Section 7.4: per limb, the greedy one-to-one selection (cid_a, cid_b, s, i, j, length)."""
    h, w = paf.shape[:2]
    connections, special = [], set()
    for k, (a, b) in enumerate(layout.limbs):
        cand_a, cand_b = peaks[a], peaks[b]
        if not cand_a or not cand_b:
            special.add(k)
            connections.append([])
            continue
        scored = []
        for i, pa in enumerate(cand_a):
            for j, pb in enumerate(cand_b):
                norm = float(np.hypot(pb[0] - pa[0], pb[1] - pa[1]))
                mid_num = min(int(round(norm + 1)), MID_NUM)
                if norm == 0:
                    continue
                xs = np.linspace(pa[0], pb[0], mid_num)
                ys = np.linspace(pa[1], pb[1], mid_num)
                rows = np.clip(np.round(ys).astype(int), 0, h - 1)
                cols = np.clip(np.round(xs).astype(int), 0, w - 1)
                values = paf[rows, cols, k]
                s = values.mean() + min(0.5 * image_height / norm - 1, 0)
                if np.count_nonzero(values > THRE2) >= CONNECT_RATION * mid_num and s > 0:
                    scored.append((i, j, s, norm, 0.5 * s + 0.25 * pa[2] + 0.25 * pb[2]))
        scored.sort(key=lambda c: c[4], reverse=True)
        selected: List[Tuple] = []
        used_i, used_j = set(), set()
        for i, j, s, norm, _ in scored:
            if i not in used_i and j not in used_j:
                selected.append((cand_a[i][3], cand_b[j][3], s, i, j, norm))
                used_i.add(i)
                used_j.add(j)
                if len(selected) >= min(len(cand_a), len(cand_b)):
                    break
        connections.append(selected)
    return connections, special


class _Person:
    def __init__(self, num_parts: int) -> None:
        self.ids = [-1] * num_parts
        self.sc = [-1.0] * num_parts
        self.total = 0.0
        self.count = 0
        self.maxlen = 0.0


def find_people(connections, special, candidates, layout: Layout) -> List[_Person]:
    """Section 7.5, line by line."""
    persons: List[_Person] = []
    score = {c[3]: c[2] for c in candidates}
    for k, (a, b) in enumerate(layout.limbs):
        if k in special:
            continue
        for ida, idb, s, _i, _j, length in connections[k]:
            hits = [j for j, p in enumerate(persons) if p.ids[a] == ida or p.ids[b] == idb][:2]
            if len(hits) == 1:
                p = persons[hits[0]]
                if p.ids[b] == -1 and LEN_RATE * p.maxlen > length:
                    p.ids[b], p.sc[b] = idb, s
                    p.count += 1
                    p.total += score[idb] + s
                    p.maxlen = max(p.maxlen, length)
                elif p.ids[b] != idb:
                    if p.sc[b] >= s:
                        pass
                    elif LEN_RATE * p.maxlen <= length:
                        continue
                    else:
                        p.total -= score[p.ids[b]] + p.sc[b]
                        p.ids[b], p.sc[b] = idb, s
                        p.total += score[idb] + s
                        p.maxlen = max(p.maxlen, length)
                elif p.sc[b] <= s:
                    p.total += s - p.sc[b]
                    p.sc[b] = s
                    p.maxlen = max(p.maxlen, length)
            elif len(hits) == 2:
                p1, p2 = persons[hits[0]], persons[hits[1]]
                if any(x >= 0 and y >= 0 for x, y in zip(p1.ids, p2.ids)):
                    continue  # remove_recon = 0: no-op
                tol = min(
                    min(sc for i, sc in zip(p1.ids, p1.sc) if i >= 0),
                    min(sc for i, sc in zip(p2.ids, p2.sc) if i >= 0),
                )
                if s < CONNECTION_TOLE * tol or LEN_RATE * p1.maxlen <= length:
                    continue
                for q, (i2, sc2) in enumerate(zip(p2.ids, p2.sc)):
                    if i2 >= 0:
                        p1.ids[q], p1.sc[q] = i2, sc2
                p1.count += p2.count
                p1.total += p2.total + s
                p1.maxlen = max(p1.maxlen, length)
                del persons[hits[1]]
            else:
                p = _Person(layout.num_keypoints)
                p.ids[a], p.ids[b] = ida, idb
                p.sc[a] = p.sc[b] = s
                p.count = 2
                p.maxlen = length
                p.total = score[ida] + score[idb] + s
                persons.append(p)
    return [p for p in persons if p.count >= MIN_PARTS and p.total / p.count >= MIN_MEAN_SCORE]


def reference_decode(
    heatmaps: np.ndarray, lb: Letterbox, layout: Layout = BKPOSE_LAYOUT, fix_refine_swap: bool = False
) -> Poses:
    """Decode [C, H, W] heatmaps the way Simple Pose's evaluate.py does (no flip test)."""
    maps = np.ascontiguousarray(np.asarray(heatmaps, np.float32).transpose(1, 2, 0))
    limb_block = maps[:, :, layout.limb_channels.start : layout.limb_channels.stop]
    heat_block = maps[:, :, layout.keypoint_start :]
    heat = upsample_to_image(np.ascontiguousarray(heat_block), lb, layout.stride)
    paf = upsample_to_image(np.ascontiguousarray(limb_block), lb, layout.stride)
    peaks = find_peaks(heat, layout.num_keypoints, fix_refine_swap)
    candidates = [c for part in peaks for c in part]
    connections, special = find_connections(paf, peaks, layout, lb.src_h)
    persons = find_people(connections, special, candidates, layout)
    by_cid = {c[3]: c for c in candidates}
    keypoints = np.zeros((len(persons), 17, 3), np.float32)
    scores = np.zeros(len(persons), np.float32)
    for n, p in enumerate(persons):
        for q, cid in enumerate(p.ids):
            slot = layout.to_coco[q]
            if cid >= 0 and slot >= 0:
                keypoints[n, slot] = by_cid[cid][:3]
        scores[n] = 1.0 - 1.0 / p.total
    return Poses(keypoints, scores)
