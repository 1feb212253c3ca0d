"""The device state a benchmark ran under, so its numbers can be reproduced and compared.

On a Jetson: board model, L4T (JetPack) release, nvpmodel mode, CPU/GPU/EMC clocks against their
maxima (whether `jetson_clocks` pinned them), and thermal zones, read from sysfs (and `nvpmodel -q`
when it can run). Everywhere: CPU model and cores, GPU name and clocks where `nvidia-smi` exists,
and library versions. Readers take a filesystem root so tests can run them on captured trees;
what cannot be read is reported as "unknown", never guessed.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional

UNKNOWN = "unknown"
GPU_DEVFREQ_GLOBS = ("sys/devices/gpu.0/devfreq/*", "sys/devices/platform/gpu.0/devfreq/*",
                     "sys/devices/*.gv11b/devfreq/*", "sys/devices/platform/*.gpu/devfreq/*")  # fmt: skip


def _read(root: str, path: str) -> Optional[str]:
    try:
        with open(os.path.join(root, path)) as f:
            return f.read().strip()
    except OSError:
        return None


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def is_jetson(root: str = "/") -> bool:
    return _read(root, "etc/nv_tegra_release") is not None or "jetson" in (_model(root) or "").lower()


def _model(root: str) -> Optional[str]:
    text = _read(root, "proc/device-tree/model")
    return text.rstrip("\x00") if text else None


def l4t_release(root: str = "/") -> str:
    """'R35 (release), REVISION: 4.1' in /etc/nv_tegra_release -> '35.4.1'."""
    text = _read(root, "etc/nv_tegra_release") or ""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{match.group(1)}.{match.group(2)}" if match else UNKNOWN


def parse_nvpmodel(text: str) -> str:
    """`nvpmodel -q` output -> 'MAXN (0)'."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text)
    number = re.search(r"^\s*(\d+)\s*$", text, re.M)
    if not name:
        return UNKNOWN
    return f"{name.group(1)} ({number.group(1)})" if number else name.group(1)


def nvpmodel_mode(root: str = "/") -> str:
    if root == "/" and shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
            return parse_nvpmodel(out.stdout)
        except (OSError, subprocess.SubprocessError):
            return UNKNOWN
    text = _read(root, "var/lib/nvpmodel/status")  # "pmode:0000 fmode:..." on JetPack 5
    match = re.search(r"pmode:(\d+)", text or "")
    return f"mode {int(match.group(1))}" if match else UNKNOWN


def cpu_clocks(root: str = "/") -> List[Dict[str, Any]]:
    clocks = []
    for path in sorted(glob.glob(os.path.join(root, "sys/devices/system/cpu/cpu[0-9]*/cpufreq"))):
        rel = os.path.relpath(path, root)
        cur, top = _int(_read(root, f"{rel}/scaling_cur_freq")), _int(_read(root, f"{rel}/scaling_max_freq"))
        hw_max = _int(_read(root, f"{rel}/cpuinfo_max_freq"))
        clocks.append(
            {
                "cpu": os.path.basename(os.path.dirname(path)),
                "cur_khz": cur,
                "max_khz": top,
                "hw_max_khz": hw_max,
            }
        )
    return clocks


def gpu_clock(root: str = "/") -> Dict[str, Any]:
    for pattern in GPU_DEVFREQ_GLOBS:
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            rel = os.path.relpath(path, root)
            cur, top = _int(_read(root, f"{rel}/cur_freq")), _int(_read(root, f"{rel}/max_freq"))
            avail = (_read(root, f"{rel}/available_frequencies") or "").split()
            hw_max = max((int(a) for a in avail if a.isdigit()), default=top)
            if cur is not None:
                return {
                    "cur_hz": cur,
                    "max_hz": top,
                    "hw_max_hz": hw_max,
                    "min_hz": _int(_read(root, f"{rel}/min_freq")),
                }
    return {}


def emc_clock(root: str = "/") -> Dict[str, Any]:
    cur = _int(_read(root, "sys/kernel/debug/bpmp/debug/clk/emc/rate"))
    top = _int(_read(root, "sys/kernel/debug/bpmp/debug/clk/emc/max_rate"))
    return {"cur_hz": cur, "max_hz": top} if cur is not None else {}


def temperatures(root: str = "/") -> Dict[str, float]:
    temps = {}
    for path in sorted(glob.glob(os.path.join(root, "sys/devices/virtual/thermal/thermal_zone*"))):
        rel = os.path.relpath(path, root)
        name, value = _read(root, f"{rel}/type"), _int(_read(root, f"{rel}/temp"))
        if name and value is not None and value > -40000:
            temps[name] = value / 1000.0
    return temps


def parse_tegrastats(line: str) -> Dict[str, Any]:
    """One tegrastats line -> RAM, CPU loads@MHz, EMC%, GPU%@MHz and temperatures."""
    out: Dict[str, Any] = {}
    ram = re.search(r"RAM (\d+)/(\d+)MB", line)
    if ram:
        out["ram_mb"] = [int(ram.group(1)), int(ram.group(2))]
    cpu = re.search(r"CPU \[([^\]]*)\]", line)
    if cpu:
        cores = []
        for part in cpu.group(1).split(","):
            m = re.match(r"\s*(\d+)%@(\d+)", part)
            cores.append({"load": int(m.group(1)), "mhz": int(m.group(2))} if m else None)
        out["cpu"] = cores
    emc = re.search(r"EMC_FREQ (\d+)%(?:@(\d+))?", line)
    if emc:
        out["emc_load"] = int(emc.group(1))
        if emc.group(2):
            out["emc_mhz"] = int(emc.group(2))
    gpu = re.search(r"GR3D_FREQ (\d+)%(?:@\[?(\d+))?", line)
    if gpu:
        out["gpu_load"] = int(gpu.group(1))
        if gpu.group(2):
            out["gpu_mhz"] = int(gpu.group(2))
    out["temps"] = {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+)@(-?[\d.]+)C", line)}
    return out


def jetson_state(root: str = "/") -> Dict[str, Any]:
    """Clocks and temperatures now (call at start and end of a run)."""
    return {
        "cpu": cpu_clocks(root),
        "gpu": gpu_clock(root),
        "emc": emc_clock(root),
        "temps_c": temperatures(root),
    }


def clock_warnings(state: Dict[str, Any], hot_c: float = 85.0) -> List[str]:
    """Why numbers taken in this state may be below what the device can do."""
    warnings = []
    gpu = state.get("gpu") or {}
    if gpu.get("cur_hz") and gpu.get("hw_max_hz") and gpu["cur_hz"] < gpu["hw_max_hz"]:
        warnings.append(f"GPU at {gpu['cur_hz'] / 1e6:.0f} MHz of {gpu['hw_max_hz'] / 1e6:.0f}: "
                        "run `sudo nvpmodel -m 0 && sudo jetson_clocks` for maximum clocks")  # fmt: skip
    slow = [
        c["cpu"]
        for c in state.get("cpu", [])
        if c.get("cur_khz") and c.get("hw_max_khz") and c["cur_khz"] < c["hw_max_khz"]
    ]
    if slow:
        warnings.append(f"{len(slow)} CPU core(s) below their maximum clock ({', '.join(slow[:4])}...)")
    hot = {k: v for k, v in state.get("temps_c", {}).items() if v >= hot_c}
    if hot:
        warnings.append(f"hot: {hot} (thermal throttling likely)")
    return warnings


def throttled(start: Dict[str, Any], end: Dict[str, Any]) -> bool:
    """The GPU clock fell during the run (DVFS or thermal throttling)."""
    a, b = (start.get("gpu") or {}).get("cur_hz"), (end.get("gpu") or {}).get("cur_hz")
    return bool(a and b and b < a)


def cpu_model(root: str = "/") -> str:
    text = _read(root, "proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.M)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine() or UNKNOWN


def nvidia_smi() -> Dict[str, Any]:
    if not shutil.which("nvidia-smi"):
        return {}
    query = "name,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,memory.used,memory.total,driver_version"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=15)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = [f.strip() for f in (out.stdout.splitlines() or [""])[0].split(",")]
    if len(fields) < 8:
        return {}
    keys = (
        "name",
        "sm_mhz",
        "sm_max_mhz",
        "mem_mhz",
        "temp_c",
        "memory_used_mib",
        "memory_total_mib",
        "driver",
    )
    return dict(zip(keys, fields))


def versions() -> Dict[str, str]:
    """Library versions; GPU and training packages only if this process already loaded them."""
    import importlib

    out = {"python": platform.python_version()}
    for name, label in (
        ("numpy", "numpy"),
        ("numba", "numba"),
        ("cv2", "opencv"),
        ("onnxruntime", "onnxruntime"),
    ):
        try:
            out[label] = importlib.import_module(name).__version__
        except ImportError:
            out[label] = "not installed"
    for name in ("tensorrt", "pycuda", "torch"):
        module = sys.modules.get(name)
        out[name] = getattr(module, "__version__", UNKNOWN) if module is not None else "not loaded"
    driver = sys.modules.get("pycuda.driver")
    out["cuda"] = ".".join(str(v) for v in driver.get_version()) if driver is not None else UNKNOWN
    return out


OTHER_LOAD_WARNING = 0.15  # of the whole machine's CPU time


def cpu_times(root: str = "/") -> Optional[Dict[str, float]]:
    """Machine-wide busy and total CPU seconds (/proc/stat), and this process's own CPU seconds."""
    text = _read(root, "proc/stat")
    if not text or not text.startswith("cpu "):
        return None
    ticks = [int(v) for v in text.splitlines()[0].split()[1:]]
    hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    own = os.times()
    return {"busy_s": (sum(ticks[:8]) - idle) / hz, "total_s": sum(ticks[:8]) / hz,
            "own_s": own.user + own.system}  # fmt: skip


def other_load(start: Optional[Dict[str, float]], end: Optional[Dict[str, float]]) -> Optional[float]:
    """Fraction of the machine's CPU time that other processes used between two `cpu_times`."""
    if not start or not end or end["total_s"] <= start["total_s"]:
        return None
    others = (end["busy_s"] - start["busy_s"]) - (end["own_s"] - start["own_s"])
    return max(0.0, others / (end["total_s"] - start["total_s"]))


def device_stamp(root: str = "/") -> Dict[str, Any]:
    """Everything above for this machine; Jetson fields are "unknown" elsewhere."""
    jetson = is_jetson(root)
    stamp: Dict[str, Any] = {
        "jetson": jetson,
        "board": _model(root) or UNKNOWN,
        "l4t": l4t_release(root) if jetson else UNKNOWN,
        "nvpmodel": nvpmodel_mode(root) if jetson else UNKNOWN,
        "cpu_model": cpu_model(root),
        "cpu_cores": os.cpu_count() or 0,
        "machine": platform.machine(),
        "gpu": nvidia_smi() if root == "/" else {},
        "versions": versions(),
    }
    state = jetson_state(root)
    stamp["state_start"] = state
    stamp["cpu_times_start"] = cpu_times(root)
    stamp["jetson_clocks"] = (
        UNKNOWN if not jetson or not state.get("gpu") else
        ("max" if not clock_warnings({"gpu": state["gpu"], "cpu": state["cpu"]}) else "not at max")
    )  # fmt: skip
    return stamp


def finish_stamp(stamp: Dict[str, Any], root: str = "/") -> Dict[str, Any]:
    """Add the end-of-run state, throttling and the warnings a reader of the numbers needs."""
    end = jetson_state(root)
    stamp["state_end"] = end
    stamp["throttled"] = throttled(stamp["state_start"], end) if stamp["jetson"] else UNKNOWN
    stamp["warnings"] = clock_warnings(stamp["state_start"]) + (
        ["GPU clock fell during the run (throttling)"] if stamp["throttled"] is True else []
    )
    load = other_load(stamp.pop("cpu_times_start", None), cpu_times(root))
    stamp["other_cpu_load"] = load
    if load is not None and load > OTHER_LOAD_WARNING:
        stamp["warnings"].append(
            f"other processes used {load:.0%} of the CPU during the run: these numbers are lower "
            "than on an idle machine"
        )
    return stamp
