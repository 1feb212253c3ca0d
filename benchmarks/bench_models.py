"""Which model `bkpose-bench` runs: an engine in engines/ that opens here, else the default ONNX
(`edge.default_model`); and the precision variants beside a model file."""

from __future__ import annotations

import glob
import os
import sys
from typing import List, Optional


def default_model(quiet: bool = False) -> str:
    """An engine in the engines folder that opens on this machine (TensorRT present, its sidecar
    fitting this GPU), else the default ONNX: the shipped trained weights, exported on first use
    (the untrained model where none ship)."""
    from edge.backends import open_backend
    from edge.default_model import default_onnx, engines_dir
    from edge.errors import BKPoseError

    reasons = []
    for engine in sorted(glob.glob(str(engines_dir() / "*.engine"))):
        try:
            open_backend(engine).close()
            return engine
        except BKPoseError as err:
            reasons.append(str(err))
    if reasons and not quiet:
        print(f"bkpose-bench: engines in {engines_dir()} not usable here ({reasons[0]}); using ONNX Runtime",
              file=sys.stderr)  # fmt: skip
    return default_onnx(lambda line: print(f"bkpose-bench: {line}", file=sys.stderr, flush=True))


def variants(model: str, precisions: Optional[str]) -> List[str]:
    """The model files of the requested precisions that sit next to `model` (same stem)."""
    from edge.modelinfo import parse_variant

    named = parse_variant(model)
    if not precisions or not named.precision:
        return [model]
    found = []
    for precision in (p.strip() for p in precisions.split(",")):
        path = named.with_precision(precision)
        if os.path.exists(path):
            found.append(path)
        else:
            print(f"bkpose-bench: no {precision} variant ({path}); skipped", file=sys.stderr)
    return found
