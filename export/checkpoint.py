"""Loading the checkpoints users bring, strictly, with errors that say what is wrong.

Accepted: a plain state_dict, or a dict wrapping one under `state_dict`, `model` or `weights`
(Simple Pose saves `{'weights': ..., 'optimizer_weight': ...}`), with keys optionally prefixed by
`module.` (DataParallel) and/or `posenet.` (Simple Pose). Every parameter and buffer must match
by name and shape; only BatchNorm's `num_batches_tracked` counters may be absent.
"""

from __future__ import annotations

import zipfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from edge.errors import ModelError
from edge.files import sha256_of

WRAPPER_KEYS = ("state_dict", "model", "weights")
PREFIXES = ("module.", "posenet.")
SHOWN = 5


class CheckpointError(ModelError):
    """A checkpoint cannot be read or does not fit the BK-Pose network."""


def read_checkpoint(path: str) -> Any:
    """`torch.load` on CPU without executing pickled code; any failure becomes one clear line."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({err.strerror or err})") from None
    if not head:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    looks_like = head.startswith(b"PK") or head[:1] == b"\x80"  # zip (torch >= 1.6) or legacy pickle
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... here
        reason = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:120]
        if not looks_like:
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)"
            ) from None
        if (
            isinstance(err, (zipfile.BadZipFile, EOFError))
            or "zip archive" in reason
            or "central directory" in reason
        ):
            raise CheckpointError(
                f"{path}: truncated or corrupt checkpoint ({reason or type(err).__name__})"
            ) from None
        raise CheckpointError(
            f"{path}: cannot load checkpoint ({type(err).__name__}: {reason}); "
            "save it with torch.save(model.state_dict(), path)"
        ) from None


def extract_state_dict(obj: Any, path: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """Unwrap `state_dict` / `model` / `weights` containers and strip `module.` / `posenet.`."""
    for _ in range(4):  # wrappers can nest, e.g. {'model': {'state_dict': ...}}
        if isinstance(obj, nn.Module):
            obj = obj.state_dict()
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            inner = next((obj[k] for k in WRAPPER_KEYS if k in obj), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        keys = list(obj)[:SHOWN] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path}: no state_dict found (top level: {keys}); expected a state_dict or a dict "
            f"with one of {list(WRAPPER_KEYS)}"
        )
    state: Dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        name = str(key)
        stripped = True
        while stripped:
            stripped = False
            for prefix in PREFIXES:
                if name.startswith(prefix):
                    name, stripped = name[len(prefix) :], True
        state[name] = value
    return state


def _is_state_dict(obj: Mapping[Any, Any]) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _listing(label: str, items: List[str]) -> str:
    more = f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return f"{len(items)} {label}: {', '.join(items[:SHOWN])}{more}"


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], path: str = "checkpoint") -> None:
    """Raise CheckpointError listing missing keys, unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = [
        _listing(label, items)
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
    if problems:
        raise CheckpointError(f"{path} does not fit BK-Pose: " + "; ".join(problems))


def checkpoint_input_size(obj: Any) -> Optional[int]:
    """The square input size to export a checkpoint at: `input_size` at the top (shipped weights:
    the trained size unless shipping chose another) or the trainer's `args` (bkpose-train
    checkpoints: the trained size); None when it does not say."""
    if not isinstance(obj, Mapping):
        return None
    size = obj.get("input_size")
    if size is None and isinstance(obj.get("args"), Mapping):
        size = obj["args"].get("input_size")
    return int(size) if size is not None else None


def checkpoint_decoder(obj: Any) -> Dict[str, float]:
    """Decoder constants that shipping measured for these weights (`decoder` at the top of shipped
    weights), for the exported model's metadata (`ModelInfo` refuses values that are not numbers);
    empty when it says none."""
    decoder = obj.get("decoder") if isinstance(obj, Mapping) else None
    return {str(k): v for k, v in decoder.items()} if isinstance(decoder, Mapping) else {}


def load_checkpoint(model: nn.Module, path: str) -> Tuple[str, int]:
    """Load `path` into `model` strictly; returns (sha256 of the file, number of tensors loaded)."""
    state = extract_state_dict(read_checkpoint(path), path)
    check_state_dict(model, state, path)
    model.load_state_dict(state, strict=False)  # strictness checked above, with better messages
    return sha256_of(path), len(state)
