"""INT8 quality report: does the Q/DQ model give the same heatmaps and the same people as FP32?

Both files run in ONNX Runtime (CPU) on the same letterboxed photos; the report gives the heatmap
error and the pose agreement (mean OKS of FP32 people with their INT8 matches, people found by
each). With an untrained model this only exercises the machinery; with a trained checkpoint the
same command gives the numbers that decide whether INT8 ships.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from edge.decode import Decoder
from edge.decode.agreement import agreement
from edge.modelinfo import ModelInfo
from export.parity import errors, ort_session, worst
from export.quantize import letterboxed_with_boxes


def int8_report(fp32_path: str, int8_path: str, files: Sequence[str], info: ModelInfo) -> Dict[str, Any]:
    fp32, int8 = ort_session(fp32_path), ort_session(int8_path)
    decoder = Decoder(info.layout)
    heat, pairs = [], []
    for tensor, lb in letterboxed_with_boxes(files, info):
        a = fp32.run(None, {"image": tensor})[0]
        b = int8.run(None, {"image": tensor})[0]
        heat.append(errors(a, b))
        pairs.append((decoder.decode(a[0], lb), decoder.decode(b[0], lb)))
    if not heat:
        raise ValueError("no report image could be decoded")
    summary = worst(heat)
    summary["mean_abs_over_images"] = float(np.mean([h["max_abs"] for h in heat]))
    return {"images": len(heat), "heatmaps": summary, "poses": agreement(pairs)}
