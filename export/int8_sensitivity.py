"""Which layers lose most in INT8, worst first: for every quantized activation, the signal to
quantization noise ratio (SQNR, dB) that its own Q/DQ pair adds, measured by ONNX Runtime's
`qdq_loss_debug` on letterboxed photos, with the nodes that consume it. The consumers of the worst
activations are the nodes to leave unquantized with `bkpose-export --int8-keep-float`.

    python -m export.int8_sensitivity engines/m.fp32.onnx engines/m.int8.onnx --images DIR [--limit 16]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from edge.modelinfo import ModelInfo
from export.parity import image_files
from export.quantize import OP_TYPES, calibration_reader, quiet_root_logger


def sensitivity(
    fp32_path: str, int8_path: str, files: Sequence[str], info: ModelInfo
) -> List[Dict[str, Any]]:
    """One row per quantized activation: tensor, its consumers among the quantized op types,
    `qdq_sqnr_db` (the noise of that tensor's own quantization) and `model_sqnr_db` (the error
    accumulated up to it in the INT8 graph); lowest `qdq_sqnr_db` first.

    The photos run one at a time and only the sums of squares stay, so memory does not grow with
    their number (every intermediate tensor of 16 photos at 512 exceeds this machine's 23 GB);
    the ratios are the ones ONNX Runtime's `compute_signal_to_quantization_noice_ratio` takes
    over all photos concatenated."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    graph = onnx.load(fp32_path).graph
    consumers: Dict[str, List[str]] = {}
    for node in graph.node:
        if node.op_type in OP_TYPES:
            for name in node.input:
                consumers.setdefault(name, []).append(node.name)
    # tensor -> squared norms: pre-Q/DQ, its Q/DQ noise, FP32 twin, the INT8 graph's drift from it
    sums: Dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp, quiet_root_logger():
        augmented = {}
        for label, path in (("float", fp32_path), ("qdq", int8_path)):
            augmented[label] = os.path.join(tmp, f"{label}.onnx")
            modify_model_output_intermediate_tensors(path, augmented[label])
        for photo in files:
            activations = {
                label: collect_activations(model, calibration_reader([photo], info))
                for label, model in augmented.items()
            }
            matched = create_activation_matching(activations["qdq"], activations["float"])
            for tensor, match in matched.items():
                total = sums.setdefault(tensor, np.zeros(4))
                total[:2] += _squared_norms(match["pre_qdq"], match["post_qdq"])
                if match.get("float"):
                    total[2:] += _squared_norms(match["float"], match["post_qdq"])
            del activations, matched
    rows = []
    for tensor, total in sums.items():
        if not total[2]:
            continue  # no FP32 twin, or all zeros in FP32 too (nothing to lose)
        rows.append({
            "tensor": tensor,
            "consumers": consumers.get(tensor, []),
            "qdq_sqnr_db": _sqnr_db(total[0], total[1]),
            "model_sqnr_db": _sqnr_db(total[2], total[3]),
        })  # fmt: skip
    return sorted(rows, key=lambda row: row["qdq_sqnr_db"])


def _squared_norms(reference: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> np.ndarray:
    """One photo's squared norms of `reference` and of `reference - other`, in float64."""
    x = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in reference])
    diff = x - np.concatenate([np.asarray(b, dtype=np.float64).ravel() for b in other])
    return np.array([x @ x, diff @ diff])


def _sqnr_db(signal: float, noise: float) -> float:
    """20 log10 of the norm ratio, floored at float epsilon as ONNX Runtime's version is."""
    eps = sys.float_info.epsilon
    return 20.0 * math.log10(max(math.sqrt(signal), eps) / max(math.sqrt(noise), eps))


def worst_nodes(rows: Sequence[Dict[str, Any]], count: int) -> List[str]:
    """The consumers of the worst activations, `count` distinct nodes, in order."""
    nodes: List[str] = []
    for row in rows:
        for node in row["consumers"]:
            if node not in nodes and len(nodes) < count:
                nodes.append(node)
    return nodes


def main(argv: Optional[Sequence[str]] = None) -> int:
    from edge.backends.ort import OrtBackend

    p = argparse.ArgumentParser(prog="python -m export.int8_sensitivity", description=__doc__.split("\n")[0])
    p.add_argument("fp32", help="the FP32 ONNX file")
    p.add_argument("int8", help="its Q/DQ INT8 file")
    p.add_argument("--images", required=True, help="folder of photos to measure on")
    p.add_argument("--limit", type=int, default=16, help="photos used (default 16)")
    p.add_argument("--top", type=int, default=10, help="rows printed (default 10)")
    p.add_argument("--json", help="write every row here")
    args = p.parse_args(argv)
    with OrtBackend(args.fp32, device="cpu") as backend:
        info = backend.info
    rows = sensitivity(args.fp32, args.int8, image_files(args.images, args.limit), info)
    for row in rows[: args.top]:
        model = "n/a" if row["model_sqnr_db"] is None else f"{row['model_sqnr_db']:.1f}"
        print(f"{row['qdq_sqnr_db']:7.1f} dB own, {model:>6} dB so far  {row['tensor']} -> "
              f"{', '.join(row['consumers']) or '(none)'}")  # fmt: skip
    print(f"keep float: --int8-keep-float {','.join(worst_nodes(rows, 3))}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
