"""Person assembly from matched limbs (Simple Pose `find_people`, model_spec section 7.5).

Arrays (see limbs.py for `conn`, `conn_n`):
    person_id:  int32   [N, T]  per person and keypoint type, the peak id (p * K + i) or -1
    person_sc:  float32 [N, T]  score s of the limb that attached that keypoint, or -1
    person_f:   float64 [N, 2]  (total score, longest attached limb length)
    person_cnt: int32   [N]     number of attached keypoints
A peak id p * K + i names peaks[p, i] (K = peak capacity).
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _peak_score(peaks, pid):
    k = peaks.shape[1]
    return peaks[pid // k, pid % k, 2]


@njit(cache=True, nogil=True)
def _delete_person(person_id, person_sc, person_f, person_cnt, j, n):
    for r in range(j, n - 1):
        person_id[r] = person_id[r + 1]
        person_sc[r] = person_sc[r + 1]
        person_f[r] = person_f[r + 1]
        person_cnt[r] = person_cnt[r + 1]


@njit(cache=True, nogil=True)
def _attach_one(person_id, person_sc, person_f, person_cnt, peaks, p, b, idb, s, length, len_rate):
    """The single-hit branch: only slot b of person p is ever updated."""
    if person_id[p, b] == -1 and len_rate * person_f[p, 1] > length:
        person_id[p, b] = idb
        person_sc[p, b] = s
        person_cnt[p] += 1
        person_f[p, 0] += _peak_score(peaks, idb) + s
        person_f[p, 1] = max(person_f[p, 1], length)
    elif person_id[p, b] != idb:
        if person_sc[p, b] >= s or len_rate * person_f[p, 1] <= length:
            return
        person_f[p, 0] -= _peak_score(peaks, person_id[p, b]) + person_sc[p, b]
        person_id[p, b] = idb
        person_sc[p, b] = s
        person_f[p, 0] += _peak_score(peaks, idb) + s
        person_f[p, 1] = max(person_f[p, 1], length)
    elif person_sc[p, b] <= s:
        person_f[p, 0] += s - person_sc[p, b]
        person_sc[p, b] = s
        person_f[p, 1] = max(person_f[p, 1], length)


@njit(cache=True, nogil=True)
def _min_present_score(person_id, person_sc, p):
    lo = np.inf
    for q in range(person_id.shape[1]):
        if person_id[p, q] >= 0 and person_sc[p, q] < lo:
            lo = person_sc[p, q]
    return lo


@njit(cache=True, nogil=True)
def _try_merge(person_id, person_sc, person_f, person_cnt, p1, p2, s, length, len_rate, merge_tolerance):
    """Merge p2 into p1 when they share no keypoint type and the limb is strong enough."""
    for q in range(person_id.shape[1]):
        if person_id[p1, q] >= 0 and person_id[p2, q] >= 0:
            return False
    tol = min(_min_present_score(person_id, person_sc, p1), _min_present_score(person_id, person_sc, p2))
    if s < merge_tolerance * tol or len_rate * person_f[p1, 1] <= length:
        return False
    for q in range(person_id.shape[1]):
        if person_id[p2, q] >= 0:
            person_id[p1, q] = person_id[p2, q]
            person_sc[p1, q] = person_sc[p2, q]
    person_cnt[p1] += person_cnt[p2]
    person_f[p1, 0] += person_f[p2, 0] + s
    person_f[p1, 1] = max(person_f[p1, 1], length)
    return True


@njit(cache=True, nogil=True)
def assemble_people(limbs, peaks, conn, conn_n, len_rate, merge_tolerance,
                    person_id, person_sc, person_f, person_cnt):  # fmt: skip
    """Group matched limbs into people, limb by limb in grouping order.

    Returns (people, dropped): the number of rows filled and the number of new people that did
    not fit the capacity N.
    """
    cap = person_id.shape[0]
    k_cap = peaks.shape[1]
    n = 0
    dropped = 0
    for k in range(limbs.shape[0]):
        a = limbs[k, 0]
        b = limbs[k, 1]
        for c in range(conn_n[k]):
            ida = a * k_cap + int(conn[k, c, 0])
            idb = b * k_cap + int(conn[k, c, 1])
            s = conn[k, c, 2]
            length = conn[k, c, 3]
            hit0 = -1
            hit1 = -1
            for j in range(n):
                if person_id[j, a] == ida or person_id[j, b] == idb:
                    if hit0 < 0:
                        hit0 = j
                    elif hit1 < 0:
                        hit1 = j
                        break
            if hit0 >= 0 and hit1 < 0:
                _attach_one(
                    person_id, person_sc, person_f, person_cnt, peaks, hit0, b, idb, s, length, len_rate
                )
            elif hit1 >= 0:
                if _try_merge(person_id, person_sc, person_f, person_cnt, hit0, hit1, s, length,
                              len_rate, merge_tolerance):  # fmt: skip
                    _delete_person(person_id, person_sc, person_f, person_cnt, hit1, n)
                    n -= 1
            elif n == cap:
                dropped += 1
            else:
                person_id[n] = -1
                person_sc[n] = -1.0
                person_id[n, a] = ida
                person_id[n, b] = idb
                person_sc[n, a] = s
                person_sc[n, b] = s
                person_cnt[n] = 2
                person_f[n, 0] = _peak_score(peaks, ida) + _peak_score(peaks, idb) + s
                person_f[n, 1] = length
                n += 1
    return n, dropped


@njit(cache=True, nogil=True)
def emit_people(peaks, person_id, person_f, person_cnt, n, to_coco, min_parts, min_mean_score,
                ax, bx, ay, by, keypoints, scores):  # fmt: skip
    """Write the people that pass the filters into `keypoints` float32 [N, 17, 3] (x, y, score in
    source-image pixels, 0 for missing) and `scores` float32 [N]; returns how many were written.

    Filters: at least `min_parts` keypoints and total / count >= `min_mean_score`.
    Person score = 1 - 1 / total, as the reference writes into COCO results.
    """
    k_cap = peaks.shape[1]
    out = 0
    for p in range(n):
        cnt = person_cnt[p]
        if cnt < min_parts or person_f[p, 0] / cnt < min_mean_score:
            continue
        keypoints[out] = 0.0
        for q in range(person_id.shape[1]):
            pid = person_id[p, q]
            slot = to_coco[q]
            if pid < 0 or slot < 0:
                continue
            t = pid // k_cap
            i = pid % k_cap
            keypoints[out, slot, 0] = peaks[t, i, 0] * ax + bx
            keypoints[out, slot, 1] = peaks[t, i, 1] * ay + by
            keypoints[out, slot, 2] = peaks[t, i, 2]
        scores[out] = 1.0 - 1.0 / person_f[p, 0]
        out += 1
    return out


def people_workspace(capacity, num_types, num_coco=17):
    """(person_id, person_sc, person_f, person_cnt, keypoints, scores) arrays."""
    return (
        np.full((capacity, num_types), -1, np.int32),
        np.full((capacity, num_types), -1.0, np.float32),
        np.zeros((capacity, 2), np.float64),
        np.zeros(capacity, np.int32),
        np.zeros((capacity, num_coco, 3), np.float32),
        np.zeros(capacity, np.float32),
    )
