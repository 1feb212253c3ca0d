"""A trained checkpoint's numbers for its model card: export at the checkpoint's input size (the
trained one, or the one shipped weights name) to FP32, FP16 and INT8 Q/DQ (calibrated on training
photos), then COCO keypoint AP of each on dev538 through the runtime path (ONNX Runtime, named:
not OpenVINO even where installed; the Numba decoder; pycocotools) and the mean OKS agreement of
FP16 and INT8 with FP32. If INT8 misses the bar (at most 1 AP point lost, mean OKS agreement >=
0.95), the layers whose quantization hurts most (`export.int8_sensitivity`) are kept in float,
more in turn, and every graph tried is reported.

    python -m benchmarks.model_report --checkpoint models/bkpose-coco2k-512.pth [--calib-limit 300]
        [--calib-method minmax|entropy|percentile]

Writes the exported files to `--out`, the JSON to `results/model_report.json`, and prints the
Markdown table the card holds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import bench
from benchmarks.common import DEV538_ANNOTATIONS, DEV538_IMAGES, RESULTS_DIR, write_json
from benchmarks.train_overfit import TRAIN_IMAGES
from edge.backends.ort import OrtBackend

COLUMNS = ("AP", "AP50", "AP75", "APM", "APL", "AR")
MAX_AP_LOSS_POINTS = 1.0
MIN_MEAN_OKS = 0.95


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
    for row in accuracy.get("noise_floor", []):
        agree = row["agreement"]
        oks = "n/a" if agree["mean_oks"] is None else f"{agree['mean_oks']:.3f}"
        blanks = " | ".join("" for _ in COLUMNS)
        lines.append(
            f"| fp32 maps + N(0, {row['sigma']:g}) noise | {blanks} | {oks} | {agree['candidate_people']} |"
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.model_report", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--name", help="file stem (default: the checkpoint's)")
    p.add_argument("--out", type=Path, default=Path("engines"))
    p.add_argument("--calib-images", type=Path, default=TRAIN_IMAGES)
    p.add_argument("--calib-limit", type=int, default=300)
    p.add_argument("--calib-method", choices=("minmax", "entropy", "percentile"), default="minmax")
    p.add_argument("--annotations", type=Path, default=DEV538_ANNOTATIONS)
    p.add_argument("--images", type=Path, default=DEV538_IMAGES)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", type=Path, default=RESULTS_DIR / "model_report.json")
    p.add_argument(
        "--keep-float", type=lambda v: [int(c) for c in v.split(",")], default=[3, 6, 12],
        help="if INT8 misses the bar: numbers of most sensitive layers to keep in float, tried in turn",
    )  # fmt: skip
    args = p.parse_args(argv)

    name = args.name or os.path.splitext(os.path.basename(args.checkpoint))[0]
    accuracy = measure(args, name, [])
    if accuracy is None:
        return 2
    tables = [markdown(accuracy)]
    payload: Dict[str, Any] = {
        "checkpoint": os.path.abspath(args.checkpoint),
        "manifest": json.loads((args.out / f"{name}.manifest.json").read_text()),
        "accuracy": accuracy, "int8_verdict": int8_verdict(accuracy), "mixed": [],
    }  # fmt: skip
    print("\n" + tables[0] + "\n" + verdict_line(payload["int8_verdict"]))
    if not payload["int8_verdict"]["passes"]:
        from export.int8_sensitivity import sensitivity, worst_nodes
        from export.parity import image_files

        fp32, int8 = (str(args.out / f"{name}.{p}.onnx") for p in ("fp32", "int8"))
        with OrtBackend(fp32, device="cpu") as backend:
            info = backend.info
        rows = sensitivity(fp32, int8, image_files(str(args.calib_images), 16), info)
        payload["sensitivity"] = rows[:20]
        for count in args.keep_float:
            keep = worst_nodes(rows, count)
            mixed = measure(args, f"{name}-keep{count}", ["--int8-keep-float", ",".join(keep)])
            if mixed is None:
                return 2
            verdict = int8_verdict(mixed)
            payload["mixed"].append({"keep_float": keep, "accuracy": mixed, "int8_verdict": verdict})
            tables.append(f"INT8 with {count} layers kept in float ({', '.join(keep)}):\n" + markdown(mixed))
            print("\n" + tables[-1] + "\n" + verdict_line(verdict))
            if verdict["passes"]:
                break
    payload["markdown"] = "\n\n".join(tables)
    print(f"JSON -> {write_json(args.json, payload)}")
    return 0


def measure(args: argparse.Namespace, name: str, export_options: List[str]) -> Optional[Dict[str, Any]]:
    """Export `name` (FP32, FP16, INT8) and score every precision on dev538; None if either failed."""
    from export import cli as export_cli

    exported = export_cli.main(
        ["--checkpoint", args.checkpoint, "--out", str(args.out), "--name", name, "--int8",
         "--calib-images", str(args.calib_images), "--calib-limit", str(args.calib_limit),
         "--calib-method", args.calib_method, *export_options]
    )  # fmt: skip
    if exported != 0:
        return None
    accuracy_json = args.json.with_name(f"{args.json.stem}.{name}.accuracy.json")
    code = bench.main(
        ["--model", str(args.out / f"{name}.fp32.onnx"), "--accuracy", "--annotations", str(args.annotations),
         "--images", str(args.images), "--precision", "fp32,fp16,int8", "--threads", str(args.threads),
         "--backend", "ort", "--json", str(accuracy_json)]
    )  # fmt: skip
    if code not in (0, 1):
        return None
    return json.loads(accuracy_json.read_text())["accuracy"]


def int8_verdict(accuracy: Dict[str, Any]) -> Dict[str, Any]:
    """The issue's INT8 bar: at most 1.0 AP point lost against FP32, mean OKS agreement >= 0.95."""
    by = accuracy["by_precision"]
    loss = 100.0 * (by["fp32"]["coco"]["AP"] - by["int8"]["coco"]["AP"])
    oks = by["int8"]["agreement_with_" + accuracy["reference"]]["mean_oks"]
    passes = loss <= MAX_AP_LOSS_POINTS and oks is not None and oks >= MIN_MEAN_OKS
    return {"ap_loss_points": loss, "mean_oks": oks, "passes": passes}


def verdict_line(verdict: Dict[str, Any]) -> str:
    oks = "n/a" if verdict["mean_oks"] is None else f"{verdict['mean_oks']:.3f}"
    outcome = "meets" if verdict["passes"] else "misses"
    return (f"INT8: {verdict['ap_loss_points']:+.2f} AP points lost, mean OKS {oks}: {outcome} the bar "
            f"(<= {MAX_AP_LOSS_POINTS} points, >= {MIN_MEAN_OKS})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
