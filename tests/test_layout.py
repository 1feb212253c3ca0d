import json

import pytest

from edge.errors import LayoutError
from edge.layout import (
    BKPOSE_LAYOUT,
    COCO_KEYPOINTS,
    METADATA_KEY,
    Layout,
    keypoint_flip,
    require_compatible,
)


def test_channel_offsets_match_model_spec():
    lay = BKPOSE_LAYOUT
    assert lay.num_channels == 50
    assert list(lay.limb_channels) == list(range(30))
    assert list(lay.keypoint_channels) == list(range(30, 48))
    assert lay.aux_channels == ("person_mask", "keypoint_max")
    assert lay.keypoints[1] == "neck" and lay.keypoints[0] == "nose"
    assert lay.limbs[0] == (1, 0) and lay.limbs[29] == (8, 11)
    assert METADATA_KEY == "bkpose.layout"


def test_every_limb_joins_two_existing_keypoints():
    lay = BKPOSE_LAYOUT
    for a, b in lay.limbs:
        assert 0 <= a < lay.num_keypoints and 0 <= b < lay.num_keypoints and a != b


def test_coco_mapping_is_a_bijection_onto_17_slots():
    lay = BKPOSE_LAYOUT
    slots = [c for c in lay.to_coco if c >= 0]
    assert sorted(slots) == list(range(17))
    assert lay.to_coco[lay.keypoints.index("neck")] == -1
    for k, c in enumerate(lay.to_coco):
        if c >= 0:
            assert COCO_KEYPOINTS[c] == lay.keypoints[k]
    # the Simple Pose dt_gt_mapping, written out in model_spec section 7.6
    assert lay.to_coco == (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
    assert [lay.keypoints[k] for k in lay.coco_to_layout] == list(COCO_KEYPOINTS)


def test_flip_tables_agree_with_names_and_limbs():
    lay = BKPOSE_LAYOUT
    kflip = keypoint_flip(lay.keypoints)
    assert lay.flip_heat[: lay.num_keypoints] == kflip
    assert lay.flip_heat[lay.num_keypoints :] == (18, 19)
    # flipping limb k gives the limb joining the flipped endpoints (up to direction)
    for k, (a, b) in enumerate(lay.limbs):
        fa, fb = lay.limbs[lay.flip_limbs[k]]
        assert {fa, fb} == {kflip[a], kflip[b]}


def test_json_round_trip():
    text = BKPOSE_LAYOUT.to_json()
    back = Layout.from_json(text)
    assert back == BKPOSE_LAYOUT
    assert json.loads(text)["format"] == "bkpose-layout"
    require_compatible(back)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(limbs=d["limbs"][:-1] + [[3, 3]]), "does not join"),
        (lambda d: d.update(limbs=d["limbs"][:-1] + [[3, 18]]), "does not join"),
        (lambda d: d.update(to_coco=[0] * 18), "bijection"),
        (lambda d: d.update(flip_limbs=list(range(29)) + [0]), "flip_limbs"),
        (lambda d: d.update(keypoint_start=31), "tile"),
        (lambda d: d.pop("stride"), "missing fields"),
        (lambda d: d.update(version=99), "not supported"),
        (lambda d: d.update(limbs=[[1]] * 30), "malformed"),
    ],
)
def test_invalid_layouts_are_refused(edit, message):
    d = BKPOSE_LAYOUT.to_dict()
    edit(d)
    with pytest.raises(LayoutError, match=message):
        Layout.from_json(json.dumps(d))


def test_not_json_is_refused():
    with pytest.raises(LayoutError, match="not valid JSON"):
        Layout.from_json("{not json")
    with pytest.raises(LayoutError, match="JSON object"):
        Layout.from_json("[1, 2]")


def test_runtime_refuses_a_model_with_another_layout():
    d = BKPOSE_LAYOUT.to_dict()
    d["limbs"] = d["limbs"][::-1]
    d["flip_limbs"] = list(range(30))
    other = Layout.from_dict(d)
    with pytest.raises(LayoutError, match="limbs"):
        require_compatible(other)
