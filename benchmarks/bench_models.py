"""Which model `bkpose-bench` runs: an engine in engines/ that opens here, else the untrained
ONNX (made on first use); and the precision variants beside a model file."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import List, Optional

from benchmarks.common import UsageError

ENGINES = Path(os.environ.get("BKPOSE_ENGINES", "engines"))  # relative to the working directory
DEFAULT_ONNX = ENGINES / "bkpose-random-s0.fp32.onnx"


def default_model(quiet: bool = False) -> str:
    """An engine in engines/ that opens on this machine (TensorRT present, its sidecar fitting this
    GPU), else the random-init ONNX, made on first use."""
    from edge.backends import open_backend
    from edge.errors import BKPoseError

    reasons = []
    for engine in sorted(glob.glob(str(ENGINES / "*.engine"))):
        try:
            open_backend(engine).close()
            return engine
        except BKPoseError as err:
            reasons.append(str(err))
    if reasons and not quiet:
        print(f"bkpose-bench: engines in {ENGINES} not usable here ({reasons[0]}); using ONNX Runtime",
              file=sys.stderr)  # fmt: skip
    if not DEFAULT_ONNX.exists():
        try:
            from export import cli
        except ImportError:
            raise UsageError(
                f"no model at {DEFAULT_ONNX}; make one with `bkpose-export --random-init --out engines/` "
                "(pip install 'bkpose[export]'), or pass --model"
            ) from None
        print(f"bkpose-bench: creating the untrained benchmark model {DEFAULT_ONNX} (once)", file=sys.stderr)
        cli.export_random(str(ENGINES), seed=0)
    return str(DEFAULT_ONNX)


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
