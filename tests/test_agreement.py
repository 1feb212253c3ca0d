"""OKS between pose sets (precision comparisons, the tracker's association)."""

import numpy as np

from edge.decode.agreement import oks_matrix
from edge.layout import COCO_OKS_SIGMAS


def oks_one(ref, cand, sigmas=COCO_OKS_SIGMAS):
    """pycocotools' formula for one pair, written plainly."""
    found = ref[:, 2] > 0
    if not found.any():
        return 0.0
    pts = ref[found, :2]
    area = max(np.ptp(pts[:, 0]) * np.ptp(pts[:, 1]), 1.0)
    k2 = (2 * np.asarray(sigmas)[found]) ** 2
    d2 = ((cand[found, :2] - pts) ** 2).sum(axis=1)
    e = np.exp(-d2 / (2 * area * k2))
    e[cand[found, 2] <= 0] = 0
    return e.mean()


def test_oks_matrix_matches_the_formula_pair_by_pair():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 200, (5, 17, 3))
    cand = ref[[2, 0, 4, 1]] + np.concatenate([rng.normal(0, 4, (4, 17, 2)), np.zeros((4, 17, 1))], axis=2)
    ref[..., 2] = rng.random((5, 17)) > 0.3
    cand[..., 2] = rng.random((4, 17)) > 0.2
    ref[3, :, 2] = 0  # a person with nothing found
    got = oks_matrix(ref, cand)
    want = np.array([[oks_one(r, c) for c in cand] for r in ref])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got[0, 1] > 0.5 and got[3].max() == 0  # the noisy copy matches; an empty person nothing
    assert oks_matrix(ref[:0], cand).shape == (0, 4) and oks_matrix(ref, cand[:0]).shape == (5, 0)
