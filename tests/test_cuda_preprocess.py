"""The fused CUDA letterbox kernel: compiles everywhere nvcc exists, matches the CPU reference on a GPU."""

import re
import shutil
import subprocess
import threading

import numpy as np
import pytest

from edge.cuda.letterbox import ARG_TYPES, KERNEL_SOURCE, NORM_DTYPE, kernel_source
from edge.modelinfo import ModelInfo
from edge.preprocess import CpuPreprocessor

ODD_SIZES = [(1, 1), (3, 2), (37, 2000), (333, 517), (480, 640), (513, 511), (720, 1280), (1080, 1920)]


def _signature(name):
    match = re.search(name + r"\((.*?)\)\s*\{", kernel_source(), re.S)
    assert match, name
    return [p.strip() for p in match.group(1).split(",")]


def test_python_launch_arguments_match_the_kernel_signature():
    for name in ("letterbox_f32", "letterbox_f16"):
        params = _signature(name)
        assert len(params) == len(ARG_TYPES)
        assert params[-1] == "Norm norm" and params[0].startswith("const unsigned char*")
    # struct Norm { int source[3]; float mul[3]; float add[3]; float pad[3]; } is 48 bytes
    assert NORM_DTYPE.itemsize == 48


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_kernel_source_compiles_with_nvcc(tmp_path):
    """A syntax error in the kernel fails CI even on machines without a GPU."""
    out = subprocess.run(
        ["nvcc", "-c", "-O3", KERNEL_SOURCE, "-o", str(tmp_path / "letterbox.o")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    arches = subprocess.run(["nvcc", "--list-gpu-arch"], capture_output=True, text=True, timeout=60).stdout
    if "compute_72" in arches:  # Xavier; CUDA 13 dropped it, JetPack 5's CUDA 11.4 has it
        out = subprocess.run(
            ["nvcc", "-c", "-arch=sm_72", KERNEL_SOURCE, "-o", str(tmp_path / "letterbox72.o")],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------- on a GPU
@pytest.fixture(scope="module")
def device():
    from edge.cuda.device import CudaDevice

    dev = CudaDevice(0)
    yield dev
    dev.close()


def _run_gpu(device, frame, info=None, dtype=np.float32, stream=None, poison=True):
    from edge.cuda.letterbox import GpuPreprocessor

    info = info or ModelInfo()
    with device.active():
        pre = GpuPreprocessor(device, info, dtype)
        out = device.pinned((1, 3, info.input_height, info.input_width), dtype)
        dst = device.alloc(out.nbytes)
        if poison:  # NaN everywhere: any element the kernel fails to write stays NaN
            out.fill(np.nan)
            device.upload(dst, out)
        stream = stream or device.stream()
        lb = pre(frame, dst.ptr, stream)
        device.download(out, dst, stream)
        stream.synchronize()
        pre.close()
        dst.free()
    return np.array(out, dtype=np.float32), lb


@pytest.mark.cuda
@pytest.mark.parametrize("size", ODD_SIZES)
@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-3), (np.float16, 2e-3)])
def test_kernel_matches_cpu_reference_on_random_frames(device, size, dtype, tolerance):
    frame = np.random.default_rng(size[0] * 7 + size[1]).integers(0, 256, (*size, 3), dtype=np.uint8)
    gpu, lb = _run_gpu(device, frame, dtype=dtype)
    cpu, cpu_lb = CpuPreprocessor(exact=True)(frame)
    assert lb == cpu_lb
    assert np.isfinite(gpu).all(), "the kernel left elements unwritten"
    assert np.abs(gpu - cpu).max() <= tolerance


@pytest.mark.cuda
@pytest.mark.parametrize(
    "info", [ModelInfo(), ModelInfo(channel_order="RGB", letterbox_align="center", pad_value=0.0)]
)
def test_kernel_matches_cpu_reference_on_real_photos(device, shared_data, info):
    import cv2

    for path in sorted((shared_data / "images" / "coco_train2017_mini").glob("*.jpg"))[:6]:
        frame = cv2.imread(str(path))
        gpu, _ = _run_gpu(device, frame, info)
        cpu, _ = CpuPreprocessor(info, exact=True)(frame)
        assert np.abs(gpu - cpu).max() <= 1e-3, path.name


@pytest.mark.cuda
def test_non_contiguous_frames_and_device_frames_with_row_pitch(device):
    from edge.cuda.letterbox import GpuPreprocessor

    rng = np.random.default_rng(5)
    big = rng.integers(0, 256, (481, 1283, 3), dtype=np.uint8)
    view = big[:, 1::2]
    gpu, _ = _run_gpu(device, view)
    assert np.abs(gpu - CpuPreprocessor(exact=True)(view)[0]).max() <= 1e-3
    # a frame already on the device, rows padded to a 512-byte pitch
    h, w, pitch = 301, 403, 1536
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    padded = np.zeros((h, pitch), np.uint8)
    padded[:, : w * 3] = frame.reshape(h, w * 3)
    with device.active():
        src = device.alloc(padded.nbytes)
        device.upload(src, padded)
        out = np.full((2, 3, 512, 512), np.nan, np.float32)
        dst = device.alloc(out.nbytes)
        device.upload(dst, out)
        stream = device.stream()
        GpuPreprocessor(device).run_device(src.ptr, w, h, pitch, dst.ptr, stream, batch_index=1)
        device.download(out, dst, stream)
        stream.synchronize()
    assert np.isnan(out[0]).all()  # batch slot 0 untouched
    assert np.abs(out[1] - CpuPreprocessor(exact=True)(frame)[0][0]).max() <= 1e-3


@pytest.mark.cuda
def test_two_streams_in_parallel_threads_give_the_same_results(device):
    rng = np.random.default_rng(9)
    frames = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(2)]
    results = {}
    errors = []

    def worker(i):
        try:
            with device.active():
                stream = device.stream()
            for _ in range(5):
                results[i] = _run_gpu(device, frames[i], stream=stream)[0]
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for i in range(2):
        np.testing.assert_array_equal(results[i], _run_gpu(device, frames[i])[0])


@pytest.mark.cuda
def test_invalid_frames_are_refused_before_any_gpu_work(device):
    from edge.cuda.letterbox import GpuPreprocessor

    with device.active():
        pre = GpuPreprocessor(device)
        with pytest.raises(ValueError, match="BGR uint8"):
            pre(np.zeros((10, 10), np.uint8), 0, device.stream())
