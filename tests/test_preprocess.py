"""CPU letterbox preprocessing: the reference the CUDA kernel is held to."""

import cv2
import numpy as np
import pytest

from edge.errors import FrameError
from edge.modelinfo import ModelInfo
from edge.preprocess import CpuPreprocessor, Uint8Letterbox, preprocess, resized_area, validate_frame

GREY_LEVEL = 1.0 / 255.0


def test_opencv_path_is_within_a_grey_level_of_the_exact_one_on_real_photos(shared_data):
    fast, exact = CpuPreprocessor(), CpuPreprocessor(exact=True)
    assert not fast.exact and exact.exact
    photos = sorted((shared_data / "images" / "coco_train2017_mini").glob("*.jpg"))[:8]
    assert photos
    for path in photos:
        frame = cv2.imread(str(path))
        out, lb = fast(frame)
        reference, reference_lb = exact(frame)
        assert out.shape == (1, 3, 512, 512) and out.dtype == np.float32 and lb == reference_lb
        # OpenCV rounds to uint8 with 11-bit fixed-point weights: at most one grey level apart
        difference = np.abs(out - reference)
        assert difference.max() <= GREY_LEVEL and difference.max() > 0  # two paths, not one
        assert max(lb.resized_w, lb.resized_h) == 512


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 13), (511, 513), (600, 1000), (2000, 37), (512, 512)])
@pytest.mark.parametrize("align", ["top-left", "center"])
def test_both_paths_agree_on_random_frames_of_any_size(shape, align):
    info = ModelInfo(letterbox_align=align)
    frame = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    out, lb = preprocess(frame, info, exact=True)
    fast, fast_lb = preprocess(frame, info)
    assert fast_lb == lb and np.abs(out - fast).max() <= GREY_LEVEL
    # padding carries the model's pad value, normalised
    pad = np.float32(128.0 / 255.0)
    for image in (out, fast):
        if lb.resized_h < 512:
            row = 511 if align == "top-left" else 0
            assert np.all(image[0, :, row, :] == pad)
        if lb.resized_w < 512:
            col = 511 if align == "top-left" else 0
            assert np.all(image[0, :, :, col] == pad)


def test_same_size_frame_is_copied_exactly_and_channels_follow_the_model():
    frame = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    bgr, _ = preprocess(frame)
    np.testing.assert_allclose(bgr[0], frame.transpose(2, 0, 1) / np.float32(255), rtol=0, atol=1e-7)
    rgb, _ = preprocess(frame, ModelInfo(channel_order="RGB", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    expected = (frame[:, :, ::-1].transpose(2, 0, 1) / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(rgb[0], expected, rtol=0, atol=1e-5)


def test_non_contiguous_and_huge_frames():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (480, 1280, 3), dtype=np.uint8)
    strided = base[:, ::2]  # every other column: not contiguous
    assert not strided.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(preprocess(strided)[0], preprocess(np.ascontiguousarray(strided))[0])
    flipped = base[::-1, :, ::-1]  # negative strides, channels reversed
    np.testing.assert_array_equal(preprocess(flipped)[0], preprocess(np.ascontiguousarray(flipped))[0])
    huge = rng.integers(0, 256, (4096, 4096, 3), dtype=np.uint8)
    out, lb = preprocess(huge)
    assert (lb.resized_w, lb.resized_h) == (512, 512) and np.isfinite(out).all()


def test_reuses_the_output_buffer():
    pre = CpuPreprocessor()
    buffer = pre.new_input()
    frame = np.full((100, 200, 3), 255, np.uint8)
    out, _ = pre(frame, buffer)
    assert out is buffer and buffer[0, 0, 0, 0] == 1.0
    with pytest.raises(ValueError, match="float32"):
        pre(frame, np.empty((1, 3, 256, 256), np.float32))


@pytest.mark.parametrize(
    "frame, expected",
    [
        (None, "frame is None"),
        ([[1, 2, 3]], "frame is a list"),
        (np.zeros((10, 10), np.uint8), "grayscale"),
        (np.zeros((10, 10, 4), np.uint8), "BGRA"),
        (np.zeros((10, 10, 3), np.uint16), "dtype uint16"),
        (np.zeros((10, 10, 3), np.float32), "dtype float32"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 3, 1), np.uint8), "shape"),
    ],
)
def test_invalid_frames_raise_value_error_naming_the_format(frame, expected):
    with pytest.raises(ValueError) as err:
        validate_frame(frame)
    assert isinstance(err.value, FrameError)
    assert expected in str(err.value) and "BGR uint8" in str(err.value)


def test_preprocess_benchmark_runs_and_writes_json(tmp_path):
    from benchmarks import preprocess as bench

    payload = bench.main(["--iterations", "2", "--json", str(tmp_path / "p.json")])
    assert [(r["width"], r["height"]) for r in payload["sizes"]] == list(bench.SIZES)
    assert all(r["cpu"]["median"] > 0 for r in payload["sizes"])
    assert (tmp_path / "p.json").exists()
    if payload["gpu"] is None:
        assert payload["gpu_unavailable_reason"]


def test_uint8_letterbox_holds_the_resized_pixels_and_repads_when_the_frame_size_changes():
    """The uint8 buffer a runtime normalises in its graph: OpenCV's resized pixels, in BGR, with
    the pad value everywhere else, also after a frame of another size used the same slot."""
    info = ModelInfo(pad_value=7.0)
    letterbox = Uint8Letterbox(info)
    rng = np.random.default_rng(5)
    wide = rng.integers(0, 256, (200, 600, 3), dtype=np.uint8)
    tall = rng.integers(0, 256, (600, 100, 3), dtype=np.uint8)
    for frames in ([wide], [tall], [wide, tall]):
        pixels, boxes = letterbox(frames)
        assert pixels.shape == (len(frames), 512, 512, 3) and pixels.dtype == np.uint8
        for slot, (frame, lb) in enumerate(zip(frames, boxes)):
            rows, cols = resized_area(lb)
            expected = np.full((512, 512, 3), 7, np.uint8)
            size = (lb.resized_w, lb.resized_h)
            expected[rows, cols] = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
            np.testing.assert_array_equal(pixels[slot], expected)
    assert Uint8Letterbox.usable(info) and not Uint8Letterbox.usable(ModelInfo(pad_value=127.5))
