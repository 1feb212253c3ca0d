"""Which layers lose most in INT8, worst first: for every quantized activation, the signal to
quantization noise ratio (SQNR, dB) that its own Q/DQ pair adds, measured by ONNX Runtime's
`qdq_loss_debug` on letterboxed photos, with the nodes that consume it. The consumers of the worst
activations are the nodes to leave unquantized with `bkpose-export --int8-keep-float`.

    python -m export.int8_sensitivity engines/m.fp32.onnx engines/m.int8.onnx --images DIR [--limit 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence

from edge.modelinfo import ModelInfo
from export.parity import image_files
from export.quantize import OP_TYPES, calibration_reader, quiet_root_logger


def sensitivity(
    fp32_path: str, int8_path: str, files: Sequence[str], info: ModelInfo
) -> List[Dict[str, Any]]:
    """One row per quantized activation: tensor, its consumers among the quantized op types,
    `qdq_sqnr_db` (the noise of that tensor's own quantization) and `model_sqnr_db` (the error
    accumulated up to it in the INT8 graph); lowest `qdq_sqnr_db` first."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    graph = onnx.load(fp32_path).graph
    consumers: Dict[str, List[str]] = {}
    for node in graph.node:
        if node.op_type in OP_TYPES:
            for name in node.input:
                consumers.setdefault(name, []).append(node.name)
    activations = {}
    with tempfile.TemporaryDirectory() as tmp, quiet_root_logger():
        for label, path in (("float", fp32_path), ("qdq", int8_path)):
            augmented = os.path.join(tmp, f"{label}.onnx")
            modify_model_output_intermediate_tensors(path, augmented)
            activations[label] = collect_activations(augmented, calibration_reader(files, info))
    matched = create_activation_matching(activations["qdq"], activations["float"])
    rows = []
    for tensor, error in compute_activation_error(matched).items():
        if "qdq_err" not in error or not any(a.any() for a in matched[tensor].get("float", [])):
            continue  # not quantized, or all zeros in FP32 too (nothing to lose)
        rows.append({
            "tensor": tensor,
            "consumers": consumers.get(tensor, []),
            "qdq_sqnr_db": float(error["qdq_err"]),
            "model_sqnr_db": float(error["xmodel_err"]) if "xmodel_err" in error else None,
        })  # fmt: skip
    return sorted(rows, key=lambda row: row["qdq_sqnr_db"])


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
