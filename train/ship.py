"""Turn a training checkpoint into the shipped model: an fp16 state dict (about 5 MB) that
`bkpose-export --checkpoint` loads, with the input size to run at, the size it was trained at and
where it came from.

    python -m train.ship models/run-coco2k-512/best.pth models/bkpose-coco2k-512.pth \
        [--input-size 384] [--peak-threshold 0.2] [--min-parts 6]

The network is fully convolutional, so weights trained at one size run at another: `--input-size`
ships them for a larger input where dev538 AP measured higher there (small people get more
pixels), at the cost of time per frame. `--peak-threshold` and `--min-parts` record the decoder
constants measured for these weights (`python -m benchmarks.decoder_sweep`); the export writes them
into the model's metadata and the runtime's decoder uses them.

fp16 keeps every trained weight to about 3 significant digits, far below what the network's own
FP16 export already rounds away; BatchNorm counters stay integers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Optional, Sequence

import torch

from edge.decode import DecoderParams
from edge.files import atomic_write
from train.state import expand, weights_fp16

SHIPPED_FORMAT = "bkpose-weights/1"


def shipped(
    state: Dict[str, Any], input_size: Optional[int] = None, decoder: Optional[Dict[str, float]] = None
) -> Dict[str, Any]:
    """The shipped form of a trainer state (full or compact), to run at `input_size` (default:
    the trained size) with the decoder constants `decoder` (default: the reference's)."""
    if input_size is not None and (input_size < 64 or input_size % 64):
        raise ValueError(f"input size must be a positive multiple of 64, found {input_size}")
    try:
        DecoderParams(**(decoder or {}))  # a name or value the runtime would refuse fails here
    except TypeError as err:
        raise ValueError(f"not a decoder constant: {err}") from None
    state = expand(state)
    args = state.get("args") or {}
    return {
        "format": SHIPPED_FORMAT,
        "state_dict": weights_fp16(state["model"]),
        "input_size": int(input_size or args["input_size"]),
        "trained_input_size": int(args["input_size"]),
        "epoch": int(state["epoch"]),
        "step": int(state["step"]),
        "best_dev538_ap": float(state.get("best_ap", 0.0)),
        "decoder": dict(decoder or {}),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.ship", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a bkpose-train checkpoint (best.pth, last.pth or compact.pth)")
    p.add_argument("out", help="the .pth to write")
    p.add_argument("--input-size", type=int, help="run at this size (default: the trained size)")
    p.add_argument("--peak-threshold", type=float, help="the decoder's peak threshold for these weights")
    p.add_argument("--min-parts", type=int, help="the fewest keypoints a person needs, for these weights")
    args = p.parse_args(argv)
    measured = {"peak_threshold": args.peak_threshold, "min_parts": args.min_parts}
    decoder = {k: v for k, v in measured.items() if v is not None}
    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        weights = shipped(state, args.input_size, decoder)
    except ValueError as err:
        p.error(str(err))
    atomic_write(args.out, lambda tmp: torch.save(weights, tmp))
    print(f"wrote {args.out}: epoch {weights['epoch']}, step {weights['step']}, "
          f"input {weights['input_size']} (trained at {weights['trained_input_size']}), "
          f"decoder {weights['decoder'] or 'defaults'}",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
