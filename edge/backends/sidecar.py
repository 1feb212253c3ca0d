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
    if list(sidecar["input_shape"])[2:] != [info.input_height, info.input_width]:
        raise ModelError(
            f"{sidecar_path(engine_path)}: input shape {sidecar['input_shape']} disagrees with the "
            f"metadata's {info.input_width}x{info.input_height} input; rebuild with bkpose-build"
        )
    check_source_unchanged(sidecar, engine_path)
    return info


def check_source_unchanged(sidecar: Mapping[str, Any], engine_path: str) -> None:
    """Refuse a stale engine: one whose ONNX is still where it was built from but has changed
    since (re-exported weights). An engine deployed without its ONNX is not checked."""
    onnx, recorded = sidecar.get("onnx"), sidecar.get("onnx_sha256")
    if not onnx or not recorded or not os.path.isfile(onnx):
        return
    from edge.files import sha256_of

    if sha256_of(onnx) != recorded:
        raise ModelError(
            f"{engine_path} is stale: {onnx} changed since the engine was built from it; "
            f"run `{rebuild_command(sidecar)}`"
        )


def check_engine_input(sidecar: Mapping[str, Any], shape: Any, engine_path: str) -> None:
    """The deserialised engine's input shape must be the sidecar's (dynamic axes as -1 or a name)."""
    recorded = list(sidecar["input_shape"])
    actual = list(shape)
    same = len(recorded) == len(actual) and all(
        not isinstance(r, int) or int(a) < 0 or int(r) == int(a) for r, a in zip(recorded, actual)
    )
    if not same:
        raise ModelError(
            f"{sidecar_path(engine_path)} describes input {recorded} but the engine takes {actual}: "
            "the sidecar belongs to another engine; rebuild with bkpose-build"
        )


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
