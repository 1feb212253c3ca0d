"""The recipe's learning check: overfit N training photos and score the model on themselves.

    python -m benchmarks.train_overfit [--photos 64] [--epochs 60] [--input-size 256] [-- TRAIN ARGS]

A recipe that cannot memorise 64 photos without augmentation cannot learn COCO: this runs
`bkpose-train` on the first N annotated photos of the training set (no augmentation), evaluates
every `--eval-every` epochs on the same photos through the runtime path (letterbox, Numba decoder,
pycocotools) and writes the AP curve to `results/train_overfit.json`. Exit 1 when the final AP is
below `--min-ap` (default 0.5).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

from benchmarks.common import RESULTS_DIR, SHARED_DATA, environment, write_json

TRAIN_IMAGES = SHARED_DATA / "train" / "coco_val2017_extra"
TRAIN_ANNOTATIONS = SHARED_DATA / "train" / "coco_val2017_extra_person_keypoints.json"


def subset_annotations(annotations: Path, images: Path, photos: int, out: Path) -> Path:
    """A COCO file of the first `photos` images that training would use (same filter, same order)."""
    from train.data import CocoKeypoints

    data = CocoKeypoints(str(images), str(annotations), augment=False, limit=photos)
    kept = [info for info, _ in data.entries]
    ids = {int(info["id"]) for info in kept}
    with open(annotations) as f:
        full = json.load(f)
    full["images"] = kept
    full["annotations"] = [a for a in full["annotations"] if int(a["image_id"]) in ids]
    out.write_text(json.dumps(full))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_overfit", description=__doc__.split("\n")[0])
    p.add_argument("--images", type=Path, default=TRAIN_IMAGES)
    p.add_argument("--annotations", type=Path, default=TRAIN_ANNOTATIONS)
    p.add_argument("--photos", type=int, default=64)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--min-ap", type=float, default=0.5)
    p.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    p.add_argument("--json", type=Path, default=RESULTS_DIR / "train_overfit.json")
    args = p.parse_args(argv)
    if not args.annotations.is_file():
        p.error(f"annotations not found: {args.annotations}")

    from train import cli

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        out.mkdir(parents=True, exist_ok=True)
        subset = subset_annotations(args.annotations, args.images, args.photos, out / "subset.json")
        train_args = cli.parse_args(
            [
                "--images", str(args.images),
                "--annotations", str(subset),
                "--val-images", str(args.images),
                "--val-annotations", str(subset),
                "--out", str(out),
                "--epochs", str(args.epochs),
                "--eval-every", str(args.eval_every),
                "--input-size", str(args.input_size),
                "--no-augment",
                *extra,
            ]
        )  # fmt: skip
        started = time.perf_counter()
        cli.Trainer(train_args).run()
        seconds = time.perf_counter() - started
        records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    curve = [
        {"epoch": r["epoch"], "step": r["step"], "loss": r["loss_mean"], **r["eval"]}
        for r in epochs
        if "eval" in r
    ]
    for point in curve:
        print(
            f"epoch {point['epoch']:4d}  step {point['step']:5d}  loss {point['loss']:8.3f}  "
            f"AP {point['AP']:.4f}  AP50 {point['AP50']:.4f}  people {point['people_found']}"
        )
    final_ap = curve[-1]["AP"] if curve else float("nan")
    rates = [r["images_per_s"] for r in epochs[1:] if r.get("images_per_s")]
    payload = {
        "photos": args.photos,
        "input_size": args.input_size,
        "epochs": args.epochs,
        "train_args": extra,
        "seconds": seconds,
        "images_per_s_median": sorted(rates)[len(rates) // 2] if rates else None,
        "curve": curve,
        "final_ap": final_ap,
        "min_ap": args.min_ap,
        "passed": final_ap >= args.min_ap,
        "environment": environment(),
    }
    write_json(args.json, payload)
    print(f"overfit {args.photos} photos at {args.input_size}: AP {final_ap:.4f} after {seconds:.0f} s "
          f"(gate {args.min_ap}) -> {args.json}")  # fmt: skip
    return 0 if payload["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
