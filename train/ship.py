"""Turn a training checkpoint into the shipped model: an fp16 state dict (about 5 MB) that
`bkpose-export --checkpoint` loads, with the input size it was trained at and where it came from.

    python -m train.ship models/run-coco2k-256/best.pth models/bkpose-coco2k-256.pth

fp16 keeps every trained weight to about 3 significant digits, far below what the network's own
FP16 export already rounds away; BatchNorm counters stay integers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Optional, Sequence

import torch

from edge.files import atomic_write
from train.state import expand, weights_fp16

SHIPPED_FORMAT = "bkpose-weights/1"


def shipped(state: Dict[str, Any]) -> Dict[str, Any]:
    """The shipped form of a trainer state (full or compact)."""
    state = expand(state)
    args = state.get("args") or {}
    return {
        "format": SHIPPED_FORMAT,
        "state_dict": weights_fp16(state["model"]),
        "input_size": int(args["input_size"]),
        "epoch": int(state["epoch"]),
        "step": int(state["step"]),
        "best_dev538_ap": float(state.get("best_ap", 0.0)),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.ship", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a bkpose-train checkpoint (best.pth, last.pth or compact.pth)")
    p.add_argument("out", help="the .pth to write")
    args = p.parse_args(argv)
    weights = shipped(torch.load(args.checkpoint, map_location="cpu", weights_only=True))
    atomic_write(args.out, lambda tmp: torch.save(weights, tmp))
    print(f"wrote {args.out}: epoch {weights['epoch']}, step {weights['step']}, "
          f"input {weights['input_size']}", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
