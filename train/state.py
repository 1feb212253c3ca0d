"""Training state on disk: full resumable checkpoints and the compact state that is committed.

A full checkpoint (`last.pth`) holds fp32 weights and Adam moments (about 30 MB). The compact state
keeps what a later working stretch needs to go on, in about 15 MB: fp16 weights and BatchNorm
buffers, Adam's moments in bfloat16 (its second moment spans too many decades for fp16), and the
position in the run. Resuming from it continues the run up to that rounding.
"""

from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np
import torch

COMPACT_FORMAT = "bkpose-train-compact/1"


def rng_state() -> Dict[str, Any]:
    """Every RNG's state, in types `torch.load(weights_only=True)` accepts (no numpy arrays)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _cast_floats(tree: Any, dtype: torch.dtype) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.to(dtype) if tree.is_floating_point() and tree.dim() > 0 else tree
    if isinstance(tree, dict):
        return {k: _cast_floats(v, dtype) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cast_floats(v, dtype) for v in tree)
    return tree


def compact(state: Dict[str, Any]) -> Dict[str, Any]:
    """The committed form of a full trainer state: fp16 weights, bf16 optimiser moments."""
    out = dict(state)
    out["format"] = COMPACT_FORMAT
    out["model"] = _cast_floats(state["model"], torch.float16)
    optimizer = dict(state["optimizer"])
    optimizer["state"] = _cast_floats(optimizer["state"], torch.bfloat16)
    out["optimizer"] = optimizer
    out.pop("scaler", None)  # the GradScaler re-learns its scale within a few steps
    return out


def expand(state: Dict[str, Any]) -> Dict[str, Any]:
    """A full trainer state from either form (the inverse of `compact`, up to its rounding)."""
    if state.get("format") != COMPACT_FORMAT:
        return state
    out = dict(state)
    out["model"] = _cast_floats(state["model"], torch.float32)
    optimizer = dict(state["optimizer"])
    optimizer["state"] = _cast_floats(optimizer["state"], torch.float32)
    out["optimizer"] = optimizer
    return out


def weights_fp16(model_state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The shipped model: a plain fp16 state dict that `bkpose-export --checkpoint` loads."""
    return _cast_floats(model_state, torch.float16)
