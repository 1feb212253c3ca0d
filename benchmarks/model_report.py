"""A trained checkpoint's numbers for its model card: export at the trained input size to FP32,
FP16 and INT8 Q/DQ (calibrated on training photos), then COCO keypoint AP of each on dev538
through the runtime path (ONNX Runtime, the Numba decoder, pycocotools) and the mean OKS
agreement of FP16 and INT8 with FP32.

    python -m benchmarks.model_report --checkpoint models/run-coco2k-256/best.pth [--calib-limit 300]

Writes the exported files to `--out`, the JSON to `results/model_report.json`, and prints the
Markdown table the card holds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from benchmarks import bench
from benchmarks.common import DEV538_ANNOTATIONS, RESULTS_DIR, SHARED_DATA, write_json
from benchmarks.train_overfit import TRAIN_IMAGES

DEV538_IMAGES = SHARED_DATA / "images" / "coco_val2017_dev538"
COLUMNS = ("AP", "AP50", "AP75", "APM", "APL", "AR")


def markdown(accuracy: Dict[str, Any]) -> str:
    reference = accuracy["reference"]
    lines = [
        f"| precision | {' | '.join(COLUMNS)} | mean OKS vs {reference} | people found |",
        "|---" * (len(COLUMNS) + 3) + "|",
    ]
    for precision, entry in accuracy["by_precision"].items():
        agree = entry["agreement_with_" + reference]
        oks = "n/a" if agree["mean_oks"] is None else f"{agree['mean_oks']:.3f}"
        scores = " | ".join(f"{entry['coco'][c]:.3f}" for c in COLUMNS)
        lines.append(f"| {precision} | {scores} | {oks} | {agree['candidate_people']} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.model_report", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--name", help="file stem (default: the checkpoint's)")
    p.add_argument("--out", type=Path, default=Path("engines"))
    p.add_argument("--calib-images", type=Path, default=TRAIN_IMAGES)
    p.add_argument("--calib-limit", type=int, default=300)
    p.add_argument("--annotations", type=Path, default=DEV538_ANNOTATIONS)
    p.add_argument("--images", type=Path, default=DEV538_IMAGES)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", type=Path, default=RESULTS_DIR / "model_report.json")
    args = p.parse_args(argv)

    from export import cli as export_cli

    name = args.name or os.path.splitext(os.path.basename(args.checkpoint))[0]
    exported = export_cli.main(
        ["--checkpoint", args.checkpoint, "--out", str(args.out), "--name", name, "--int8",
         "--calib-images", str(args.calib_images), "--calib-limit", str(args.calib_limit)]
    )  # fmt: skip
    if exported != 0:
        return exported
    accuracy_json = args.json.with_name(args.json.stem + ".accuracy.json")
    code = bench.main(
        ["--model", str(args.out / f"{name}.fp32.onnx"), "--accuracy", "--annotations", str(args.annotations),
         "--images", str(args.images), "--precision", "fp32,fp16,int8", "--threads", str(args.threads),
         "--json", str(accuracy_json)]
    )  # fmt: skip
    if code not in (0, 1):
        return code
    accuracy = json.loads(accuracy_json.read_text())["accuracy"]
    manifest = json.loads((args.out / f"{name}.manifest.json").read_text())
    table = markdown(accuracy)
    payload = {"checkpoint": os.path.abspath(args.checkpoint), "manifest": manifest, "accuracy": accuracy,
               "markdown": table}  # fmt: skip
    print("\n" + table)
    print(f"JSON -> {write_json(args.json, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
