"""The `.json` sidecar of a TensorRT engine: what built it, for what, and whether it fits here.

Engines are tied to the TensorRT version and the GPU that built them. The build writes this file
next to the engine; the backend reads it before deserialising and refuses a mismatch with the
field that differs and the `bkpose-build` command that makes a fitting engine.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional

from edge.errors import ModelError
from edge.modelinfo import ModelInfo

FORMAT = "bkpose-engine"
VERSION = 1
REQUIRED = ("tensorrt_version", "gpu_name", "compute_capability", "precision", "input_shape", "metadata")


def sidecar_path(engine_path: str) -> str:
    return os.path.splitext(engine_path)[0] + ".json"


def read_sidecar(engine_path: str) -> Dict[str, Any]:
    path = sidecar_path(engine_path)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ModelError(
            f"{engine_path}: its sidecar {path} is missing; engines are only used with the sidecar "
            "bkpose-build writes (rebuild with bkpose-build)"
        ) from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: unreadable engine sidecar ({err}); rebuild with bkpose-build") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path}: not a bkpose engine sidecar; rebuild with bkpose-build")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ModelError(f"{path}: sidecar lacks {missing}; rebuild with bkpose-build")
    return data


def rebuild_command(sidecar: Mapping[str, Any]) -> str:
    onnx = sidecar.get("onnx") or "<model>.onnx"
    flags = " --fp16" if sidecar.get("fp16_flag") else ""
    dla = f" --dla-core {sidecar['dla_core']}" if sidecar.get("dla_core") is not None else ""
    return f"bkpose-build {onnx}{flags}{dla}"


def check_sidecar(
    sidecar: Mapping[str, Any],
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    engine_path: str,
) -> ModelInfo:
    """Refuse an engine built by another TensorRT or GPU; return the model's metadata."""
    here = {
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
    }
    for field, value in here.items():
        if str(sidecar[field]) != str(value):
            raise ModelError(
                f"{engine_path} was built for {field} {sidecar[field]!r} but this machine has {value!r}; "
                "engines do not move between TensorRT versions or GPUs: "
                f"run `{rebuild_command(sidecar)}` here"
            )
    info = ModelInfo.from_metadata(sidecar["metadata"], sidecar_path(engine_path))
    if info.precision != sidecar["precision"]:
        raise ModelError(
            f"{sidecar_path(engine_path)}: precision {sidecar['precision']!r} disagrees with metadata"
        )
    return info


def make_sidecar(
    info: ModelInfo,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    input_shape: Any,
    onnx_path: str,
    onnx_sha256: str,
    build_seconds: float,
    fp16_flag: bool,
    int8_flag: bool,
    dla_core: Optional[int],
) -> Dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "precision": info.precision,
        "input_shape": list(input_shape),
        "onnx": onnx_path,
        "onnx_sha256": onnx_sha256,
        "layout": json.loads(info.layout.to_json()),
        "metadata": info.to_metadata(),
        "build_seconds": round(build_seconds, 2),
        "fp16_flag": fp16_flag,
        "int8_flag": int8_flag,
        "dla_core": dla_core,
    }
