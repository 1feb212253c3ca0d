"""INT8 quality report: does the Q/DQ model give the same heatmaps and the same people as FP32?

Both files run in ONNX Runtime (CPU) on the same letterboxed photos; the report gives the heatmap
error and the pose agreement (mean OKS of FP32 people with their INT8 matches, people found by
each). With an untrained model this only exercises the machinery; with a trained checkpoint the
same command gives the numbers that decide whether INT8 ships.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from edge.backends.ort import OrtBackend
from edge.decode import Decoder
from edge.decode.agreement import agreement
from edge.modelinfo import ModelInfo
from export.parity import errors, worst
from export.quantize import letterboxed


def int8_report(fp32_path: str, int8_path: str, files: Sequence[str], info: ModelInfo) -> Dict[str, Any]:
    decoder = Decoder(info.layout)
    heat, pairs = [], []
    with OrtBackend(fp32_path, device="cpu") as fp32, OrtBackend(int8_path, device="cpu") as int8:
        for tensor, lb in letterboxed(files, info):
            a, b = fp32.infer(tensor), int8.infer(tensor)
            heat.append(errors(a, b))
            pairs.append((decoder.decode(a[0], lb), decoder.decode(b[0], lb)))
    if not heat:
        raise ValueError("no report image could be decoded")
    summary = worst(heat)
    summary["mean_abs_over_images"] = float(np.mean([h["max_abs"] for h in heat]))
    return {"images": len(heat), "heatmaps": summary, "poses": agreement(pairs)}
