"""Training speed on this machine: steady-state images/s, split into data loading, forward, loss
and backward + step, at several input sizes, for the trainer's settings before and after the CPU
levers (bf16 autocast with the loss in fp32, channels_last, one loader worker with one thread).

    python -m benchmarks.train_speed [--sizes 256,384,512] [--steps 10] [--warmup-steps 3]

Each configuration runs the real `bkpose-train` step (`Trainer.train_step`) on real training
photos with augmentation. The first `--warmup-steps` steps (oneDNN primitive creation, loader
start) are reported apart and never enter the rate. Writes `results/train_speed.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import RESULTS_DIR, environment, write_json
from benchmarks.train_overfit import TRAIN_ANNOTATIONS, TRAIN_IMAGES

CORES = os.cpu_count() or 1
# "before": the trainer as it landed (fp32, NCHW, min(8, cores) loader workers);
# "after": today's defaults (bf16 autocast where the CPU has native bf16, channels_last, half the
# cores as loader workers, one thread each)
CONFIGS = {
    "before": ["--precision", "fp32", "--no-channels-last", "--workers", str(min(8, CORES))],
    "after": [],
}
PHASES = ("data", "forward", "loss", "backward_step")


def measure(
    config: List[str], size: int, batch: int, steps: int, warmup: int, images: Path, annotations: Path
) -> Dict[str, Any]:
    from train import cli

    with tempfile.TemporaryDirectory() as out:
        args = cli.parse_args(
            ["--images", str(images), "--annotations", str(annotations), "--out", out,
             "--input-size", str(size), "--batch", str(batch), "--limit", str(batch * (steps + warmup)),
             "--eval-every", "0", *config]
        )  # fmt: skip
        trainer = cli.Trainer(args)
        trainer.model.train()
        batches = iter(trainer.loader())
        rows: List[Dict[str, float]] = []
        warm_s = 0.0
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            x, target, mask = next(batches)
            x = x.contiguous(memory_format=trainer.memory_format)
            times = {"data": time.perf_counter() - t0}
            trainer.train_step(x, target, mask, focal=True, times=times)
            if i < warmup:
                warm_s += sum(times.values())
            else:
                rows.append(times)
        precision = str(trainer.amp).replace("torch.", "") if trainer.amp else "fp32"
        del batches, trainer
    per_step = {phase: float(np.median([r[phase] for r in rows])) * 1e3 for phase in PHASES}
    total_s = sum(sum(r.values()) for r in rows)
    return {
        "input_size": size,
        "precision": precision,
        "args": config,
        "steps": steps,
        "images_per_s": batch * steps / total_s,
        "median_ms_per_step": per_step,
        "warmup_steps": warmup,
        "warmup_s": warm_s,
    }


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_speed", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="256,384,512")
    p.add_argument("--configs", default="before,after", help=f"comma list of {', '.join(CONFIGS)}")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="measured steps per configuration")
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--images", type=Path, default=TRAIN_IMAGES)
    p.add_argument("--annotations", type=Path, default=TRAIN_ANNOTATIONS)
    p.add_argument("--json", type=Path, default=RESULTS_DIR / "train_speed.json")
    args = p.parse_args(argv)
    if not args.annotations.is_file():
        p.error(f"annotations not found: {args.annotations}")
    runs: List[Dict[str, Any]] = []
    print(f"{'config':<8} {'size':>5} {'precision':>9} {'img/s':>7} {'data':>7} {'forward':>8} {'loss':>7} "
          f"{'bwd+step':>9} (median ms/step)  warm-up")  # fmt: skip
    for size in (int(s) for s in args.sizes.split(",")):
        for name in args.configs.split(","):
            run = measure(CONFIGS[name], size, args.batch, args.steps, args.warmup_steps, args.images,
                          args.annotations)  # fmt: skip
            run["config"] = name
            runs.append(run)
            ms = run["median_ms_per_step"]
            print(f"{name:<8} {size:>5} {run['precision']:>9} {run['images_per_s']:>7.2f} {ms['data']:>7.1f} "
                  f"{ms['forward']:>8.1f} {ms['loss']:>7.1f} {ms['backward_step']:>9.1f}"
                  f"{'':>17}  {run['warmup_s']:.1f} s ({run['warmup_steps']} steps)", flush=True)  # fmt: skip
    speedups = {}
    for size in {r["input_size"] for r in runs}:
        by = {r["config"]: r for r in runs if r["input_size"] == size}
        if "before" in by and "after" in by:
            speedups[str(size)] = by["after"]["images_per_s"] / by["before"]["images_per_s"]
            print(f"input {size}: after / before = {speedups[str(size)]:.2f}x")
    payload = {
        "batch": args.batch,
        "runs": runs,
        "speedup_after_over_before": speedups,
        "environment": environment(),
    }
    print(f"JSON -> {write_json(args.json, payload)}")
    return payload


if __name__ == "__main__":
    main()
    sys.exit(0)
