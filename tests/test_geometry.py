import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.geometry import letterbox

sizes = st.integers(min_value=1, max_value=4096)
aligns = st.sampled_from(["top-left", "center"])


@settings(max_examples=300, deadline=None)
@given(w=sizes, h=sizes, align=aligns, u=st.floats(0, 1), v=st.floats(0, 1))
def test_forward_then_inverse_is_identity(w, h, align, u, v):
    lb = letterbox(w, h, 512, 512, align)
    pts = np.array([[u * w - 0.5, v * h - 0.5], [0.0, 0.0], [w - 1.0, h - 1.0]])
    np.testing.assert_allclose(lb.input_to_image(lb.image_to_input(pts)), pts, atol=1e-9 * max(w, h))
    np.testing.assert_allclose(lb.heatmap_to_image(lb.image_to_heatmap(pts)), pts, atol=1e-9 * max(w, h))


@settings(max_examples=300, deadline=None)
@given(w=sizes, h=sizes, align=aligns)
def test_fits_and_keeps_aspect(w, h, align):
    lb = letterbox(w, h, 512, 512, align)
    assert 1 <= lb.resized_w <= 512 and 1 <= lb.resized_h <= 512
    assert lb.resized_w == 512 or lb.resized_h == 512  # the long side fills the input
    assert lb.pad_left + lb.resized_w <= 512 and lb.pad_top + lb.resized_h <= 512
    # the image corners land on the resized area's outer pixel edges
    corners = lb.image_to_input(np.array([[-0.5, -0.5], [w - 0.5, h - 0.5]]))
    np.testing.assert_allclose(corners[0], [lb.pad_left - 0.5, lb.pad_top - 0.5], atol=1e-9)
    np.testing.assert_allclose(
        corners[1], [lb.pad_left + lb.resized_w - 0.5, lb.pad_top + lb.resized_h - 0.5], atol=1e-9
    )
    # per-axis factors differ from the ideal one only by the rounding of the resized size
    ideal = min(512 / w, 512 / h)
    assert abs(lb.resized_w - w * ideal) <= 0.5 + 1e-9 or lb.resized_w == 1
    assert abs(lb.resized_h - h * ideal) <= 0.5 + 1e-9 or lb.resized_h == 1


@settings(max_examples=200, deadline=None)
@given(w=sizes, h=sizes, align=aligns)
def test_padding_maps_outside_the_image(w, h, align):
    lb = letterbox(w, h, 512, 512, align)
    pad_points = []
    if lb.pad_left + lb.resized_w < 512:
        pad_points.append([511.0, lb.pad_top])
    if lb.pad_top + lb.resized_h < 512:
        pad_points.append([lb.pad_left, 511.0])
    if lb.pad_left > 0:
        pad_points.append([0.0, lb.pad_top])
    if lb.pad_top > 0:
        pad_points.append([lb.pad_left, 0.0])
    if not pad_points:
        return
    back = lb.input_to_image(np.array(pad_points))
    assert not lb.inside_image(back).any()


def test_landscape_and_portrait_examples():
    lb = letterbox(1280, 720)
    assert (lb.resized_w, lb.resized_h, lb.pad_left, lb.pad_top) == (512, 288, 0, 0)
    lb = letterbox(720, 1280, align="center")
    assert (lb.resized_w, lb.resized_h, lb.pad_left, lb.pad_top) == (288, 512, 112, 0)
    lb = letterbox(1, 1)
    assert (lb.resized_w, lb.resized_h) == (512, 512)
    lb = letterbox(4096, 1)
    assert (lb.resized_w, lb.resized_h) == (512, 1)


def test_heatmap_cell_centres_and_affine():
    lb = letterbox(640, 480, align="center")
    # cell 0 centre is input pixel 1.5 at stride 4 (model_spec section 5)
    np.testing.assert_allclose(lb.heatmap_to_input(np.array([0.0, 10.0])), [1.5, 41.5])
    ax, bx, ay, by = lb.heatmap_to_image_affine(4)
    cells = np.array([[3.25, 7.5], [100.0, 0.0]])
    expected = lb.heatmap_to_image(cells)
    np.testing.assert_allclose(cells[:, 0] * ax + bx, expected[:, 0])
    np.testing.assert_allclose(cells[:, 1] * ay + by, expected[:, 1])


def test_matrix_matches_point_mapping():
    lb = letterbox(333, 517, align="center")
    m = lb.image_to_input_matrix()
    pts = np.array([[0.0, 0.0], [332.0, 516.0], [10.5, 200.25]])
    np.testing.assert_allclose(pts @ m[:, :2].T + m[:, 2], lb.image_to_input(pts))


@pytest.mark.parametrize("bad", [0, -3, 2.5, None, True])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="positive integer"):
        letterbox(bad, 100)


def test_bad_alignment_is_refused():
    with pytest.raises(ValueError, match="align"):
        letterbox(10, 10, align="middle")
