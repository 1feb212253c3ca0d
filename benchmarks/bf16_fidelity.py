"""Where OpenVINO's bf16 loses agreement with f32 (issue 21's 0.97 bar), measured on real photos.

Every row decodes the same photos and is scored by mean OKS agreement with OpenVINO f32:

* `openvino bf16`: the whole graph in bf16 (what `--ov-precision bf16` runs);
* `f32 heatmaps rounded to bf16`: f32 everywhere, only the output rounded to bf16's 8-bit
  mantissa: the share of the loss that the output's own rounding explains;
* `bf16 up to <node>, f32 after`: two graphs, the body in bf16 and the rest of the network from
  that node on in f32 (the last head, or its prediction conv): what keeping the tail in float buys.

    python -m benchmarks.bf16_fidelity [--model engines/bkpose-coco2k-512.fp32.onnx] [--photos 150]
        [--json results/bf16_fidelity.json]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import DEV538_ANNOTATIONS, DEV538_IMAGES, RESULTS_DIR, write_json

SPLITS = {  # variant: the node whose output the f32 tail takes
    "bf16 up to the last head, f32 after": "/hourglasses.1/Add_1",
    "bf16 up to the prediction conv, f32 after": "/heads.1.0/spatial_attention/Mul",
}


def round_to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 rounded to the nearest bfloat16 (ties to even), kept as float32."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


class SplitModel:
    """The model up to `node` compiled in bf16, and from `node` on in f32 (a second graph)."""

    def __init__(self, path: str, node: str) -> None:
        import openvino as ov

        core = ov.Core()
        body, tail = core.read_model(path), core.read_model(path)
        cut = next(op for op in body.get_ordered_ops() if op.get_friendly_name() == node)
        body = ov.Model([cut.output(0)], body.get_parameters(), "body")
        cut = next(op for op in tail.get_ordered_ops() if op.get_friendly_name() == node)
        features = ov.opset13.parameter(cut.output(0).get_partial_shape(), ov.Type.f32, name="features")
        for target in list(cut.output(0).get_target_inputs()):
            target.replace_source_output(features.output(0))
        tail = ov.Model(tail.get_results(), [features], "tail")
        hint = {"PERFORMANCE_HINT": "LATENCY"}
        self.body = core.compile_model(body, "CPU", {**hint, "INFERENCE_PRECISION_HINT": "bf16"})
        self.tail = core.compile_model(tail, "CPU", {**hint, "INFERENCE_PRECISION_HINT": "f32"})
        self._body, self._tail = self.body.create_infer_request(), self.tail.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self._body.infer({0: x})
        self._tail.infer({0: self._body.get_output_tensor(0).data})
        return np.array(self._tail.get_output_tensor(0).data[0], copy=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bf16_fidelity", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="engines/bkpose-coco2k-512.fp32.onnx")
    p.add_argument("--annotations", default=str(DEV538_ANNOTATIONS))
    p.add_argument("--images", default=str(DEV538_IMAGES))
    p.add_argument("--photos", type=int, default=150, help="the first N annotated photos")
    p.add_argument("--json", default=str(RESULTS_DIR / "bf16_fidelity.json"))
    args = p.parse_args(argv)

    import os

    import cv2

    from edge.backends.openvino import OpenVinoBackend, cpu_has_bf16
    from edge.coco import load_coco_keypoints
    from edge.decode.agreement import agreement
    from edge.decode.decoder import Decoder
    from edge.preprocess import CpuPreprocessor

    if not cpu_has_bf16():
        print("this CPU has no bf16: nothing to measure")
        return 1
    coco = load_coco_keypoints(args.annotations)
    names = [im["file_name"] for im in coco["images"]]
    names = [n for n in names if os.path.exists(os.path.join(args.images, n))][: args.photos]
    f32 = OpenVinoBackend(args.model, precision="f32")
    bf16 = OpenVinoBackend(args.model, precision="bf16")
    splits = {label: SplitModel(args.model, node) for label, node in SPLITS.items()}
    decoder = Decoder(f32.info.layout, **f32.info.decoder)
    pre = CpuPreprocessor(f32.info)
    x = pre.new_input()
    found: Dict[str, List[Any]] = {"reference": [], "openvino bf16": [], "f32 heatmaps rounded to bf16": []}
    found.update({label: [] for label in splits})
    for name in names:
        frame = cv2.imread(os.path.join(args.images, name))
        heatmaps, lb, _ = f32.run(frame)
        found["reference"].append(decoder.decode(heatmaps, lb))
        found["f32 heatmaps rounded to bf16"].append(decoder.decode(round_to_bf16(heatmaps), lb))
        found["openvino bf16"].append(decoder.decode(*bf16.run(frame)[:2]))
        pre(frame, x)
        for label, model in splits.items():
            found[label].append(decoder.decode(model(x), lb))
    rows = []
    for label, poses in found.items():
        if label == "reference":
            continue
        score = agreement(zip(found["reference"], poses))
        rows.append({"variant": label, **score})
        print(f"{label:<44} mean OKS vs f32 {score['mean_oks']:.3f}  people {score['candidate_people']} "
              f"(f32 {score['reference_people']})", flush=True)  # fmt: skip
    out = {"model": args.model, "photos": len(names), "splits": SPLITS, "rows": rows}
    print(f"JSON -> {write_json(args.json, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
