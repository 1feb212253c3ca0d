"""The compatibility contract: `edge` imports on a CPU-only machine without torch, tensorrt or pycuda."""

import os
import subprocess
import sys
import textwrap

BLOCKED = ("torch", "tensorrt", "pycuda", "cupy")


def test_every_edge_module_imports_without_gpu_or_torch_packages():
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ImportError("blocked by the compatibility test: " + name)
                return None

        sys.meta_path.insert(0, Block())
        import edge
        for info in pkgutil.walk_packages(edge.__path__, "edge."):
            importlib.import_module(info.name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r})
        assert not loaded, loaded
        print("ok", edge.__version__)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_engine_build_and_tensorrt_backend_import_without_torch():
    """bkpose-build and the TensorRT backend run on Jetsons, where torch is usually absent."""
    script = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ImportError("blocked: " + name)
                return None

        sys.meta_path.insert(0, Block())
        import export.build, edge.backends.trt, edge.backends.ort  # noqa: F401
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_numba_cache_is_never_written_inside_the_package(tmp_path):
    """A cache under site-packages/edge outlives a reinstall and shadows the real package."""
    code = "import edge, numba; print(numba.config.CACHE_DIR)"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    python = [sys.executable, "-c", code]
    default = subprocess.run(python, env=env, capture_output=True, text=True, check=True)
    assert default.stdout.strip() == str(tmp_path / "cache" / "bkpose" / "numba")
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    chosen = subprocess.run(python, env=env, capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == str(tmp_path / "mine")


def test_what_consumes_results_does_not_import_the_runner():
    """Sinks (and trackers, fleet outputs) depend on `edge.results`, not on the pipeline's threads."""
    code = "import sys, edge.sinks; sys.exit('edge.pipeline' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
