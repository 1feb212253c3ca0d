import numpy as np

from edge.layout import BKPOSE_LAYOUT, COCO_KEYPOINTS
from edge.targets import LIMB_FILL, coco_to_layout_keypoints, render_heatmaps

LAY = BKPOSE_LAYOUT
NECK = LAY.keypoints.index("neck")


def test_neck_is_the_midpoint_of_labelled_shoulders_only():
    coco = np.zeros((2, 17, 3))
    ls, rs = COCO_KEYPOINTS.index("left_shoulder"), COCO_KEYPOINTS.index("right_shoulder")
    coco[0, ls], coco[0, rs] = [100, 50, 2], [60, 54, 1]
    coco[1, ls] = [10, 10, 2]  # right shoulder missing: no neck
    people = coco_to_layout_keypoints(coco)
    np.testing.assert_allclose(people[0, NECK], [80, 52, 1])
    assert people[1, NECK, 2] == 0
    assert people[0, LAY.keypoints.index("left_shoulder"), 0] == 100


def test_keypoint_peak_sits_on_its_cell_and_limb_follows_the_segment():
    people = np.zeros((1, 18, 3))
    people[0, NECK] = [4 * 20 + 1.5, 4 * 30 + 1.5, 2]  # exactly the centre of cell (row 30, col 20)
    people[0, 0] = [4 * 40 + 1.5, 4 * 10 + 1.5, 2]  # nose, up and to the right
    maps = render_heatmaps(people)
    assert maps.shape == (50, 128, 128) and maps.dtype == np.float32
    neck_map = maps[LAY.keypoint_start + NECK]
    assert np.unravel_index(neck_map.argmax(), neck_map.shape) == (30, 20)
    assert neck_map[30, 20] == 1.0 and neck_map[30, 40] == 0.0  # outside the +-7 cell window
    limb = maps[LAY.limb_start + LAY.limbs.index((NECK, 0))]
    assert limb[20, 30] == 1.0  # on the segment
    assert limb[10, 20] == LIMB_FILL  # box corner, far from the line: floor value
    assert limb[10, 50] == 0.0  # outside the box
    np.testing.assert_array_equal(maps[49], maps[30:48].max(axis=0))


def test_overlapping_limbs_average():
    people = np.zeros((2, 18, 3))
    for p, x in enumerate((200.0, 204.0)):
        people[p, NECK] = [x, 200, 2]
        people[p, 0] = [x, 100, 2]
    limb = render_heatmaps(people)[LAY.limbs.index((NECK, 0))]
    # cell (37, 50) has its centre at (201.5, 149.5): 1.5 px from one line, 2.5 px from the other
    expected = (np.exp(-(1.5**2) / (2 * 7.0**2)) + np.exp(-(2.5**2) / (2 * 7.0**2))) / 2
    np.testing.assert_allclose(limb[37, 50], expected, rtol=1e-6)
