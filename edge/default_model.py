"""The model `bkpose-run` and `bkpose-bench` use when none is named.

The trained weights ship as a PyTorch checkpoint (`models/bkpose-coco2k-512.pth` in a source
checkout, about 5 MB). The runtime does not import torch, so the ONNX file is made once, on first
use, by running the `bkpose-export` tool in a subprocess (as a user would), into the engines folder
(`engines/` in the working directory, or `$BKPOSE_ENGINES`). The export's manifest records the
checkpoint's SHA-256: when the shipped weights change, the stale ONNX is exported again. Where no
weights ship (an installed wheel), the untrained seed-0 model is made instead, and every tool that
runs it says it is untrained.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional

from edge.errors import ModelError
from edge.files import sha256_of
from edge.modelinfo import ModelInfo

SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "bkpose-coco2k-512.pth"
UNTRAINED_STEM = "bkpose-random-s0"


def engines_dir() -> Path:
    return Path(os.environ.get("BKPOSE_ENGINES", "engines"))


def shipped_checkpoint() -> Optional[Path]:
    """The trained weights that ship with this checkout, if present (`$BKPOSE_CHECKPOINT` overrides;
    an empty value means none: the untrained model)."""
    chosen = os.environ.get("BKPOSE_CHECKPOINT")
    path = SHIPPED_CHECKPOINT if chosen is None else (Path(chosen) if chosen else None)
    return path if path is not None and path.is_file() else None


def _manifest_checkpoint(onnx: Path) -> Optional[str]:
    """The checkpoint SHA-256 that the export manifest beside `onnx` records (None if unreadable)."""
    manifest = onnx.with_name(onnx.name.split(".")[0] + ".manifest.json")
    try:
        with open(manifest, encoding="utf-8") as f:
            return ModelInfo.from_metadata(json.load(f)["metadata"]).checkpoint_sha256
    except (OSError, ValueError, KeyError, TypeError):  # ModelError is a ValueError
        return None


def _export(options: List[str], what: str) -> None:
    command = [sys.executable, "-m", "export.cli", *options, "--no-fp16", "--quiet"]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(
            f"cannot make {what} ({detail}); export it on a machine with the export extra "
            "(pip install 'bkpose[export]') with `bkpose-export`, or pass --model"
        )


def default_onnx(announce: Callable[[str], None] = lambda line: None) -> str:
    """The default model's FP32 ONNX, exported first if it is missing or older than the weights.
    `announce` receives one line when an export starts (it takes seconds)."""
    folder = engines_dir()
    checkpoint = shipped_checkpoint()
    if checkpoint is None:
        onnx = folder / f"{UNTRAINED_STEM}.fp32.onnx"
        if not onnx.exists():
            announce(f"creating the untrained model {onnx} (once; no trained weights ship here)")
            _export(["--random-init", "--seed", "0", "--out", str(folder)], f"the untrained model {onnx}")
        return str(onnx)
    onnx = folder / f"{checkpoint.stem}.fp32.onnx"
    if not onnx.exists() or _manifest_checkpoint(onnx) != sha256_of(str(checkpoint)):
        announce(f"exporting the trained model {checkpoint.name} to {onnx} (once)")
        _export(["--checkpoint", str(checkpoint), "--out", str(folder)], f"{onnx} from {checkpoint}")
    return str(onnx)
