"""`bkpose-train`: the BK-Pose training recipe on COCO-format keypoint data.

    bkpose-train --images DIR --annotations FILE [--val-images DIR --val-annotations FILE]
                 --out runs/bk --epochs 60 --batch 8 [--lr 1e-3] [--resume runs/bk/last.pth]
                 [--save-every-min 10] [--time-budget-min 120]

Adam (lr 1e-3, batch 8, as the paper) after a linear warm-up, plain L2 for the first
`--l2-epochs` then focal L2, the learning rate divided by 10 at 75 % and 90 % of the epochs.
Mixed precision everywhere it pays: fp16 with a GradScaler on a GPU, bfloat16 autocast on a CPU
with native bf16 (the loss stays fp32); channels_last on both. `last.pth` (full state: a resumed
run continues exactly, also from the middle of an epoch) is written every epoch, every
`--save-every-min` minutes and when `--time-budget-min` runs out; `compact.pth` (fp16 weights,
bf16 Adam moments, about 15 MB) beside it is what a working stretch commits; `best.pth` when
validation AP improves. `log.jsonl` is the run's ledger: loss, learning rate, images/s, data vs
compute time, evaluations. `bkpose-export --checkpoint` reads any of these checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from edge.argtypes import above, at_least
from edge.files import atomic_write
from edge.signals import StopSignals
from export.model import BKPose, init_quiet_heads, init_simplepose
from train.data import CocoKeypoints, EpochSampler, quiet_worker
from train.evaluate import evaluate
from train.loss import LossConfig, multiscale_loss
from train.state import compact, expand, rng_state, set_rng_state


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(
        prog="bkpose-train", description="Train BK-Pose (focal L2, multi-scale supervision)."
    )
    p.add_argument("--images", required=True, help="training image folder")
    p.add_argument("--annotations", required=True, help="COCO person keypoints JSON of the training images")
    p.add_argument("--val-images", help="validation image folder")
    p.add_argument("--val-annotations", help="COCO person keypoints JSON of the validation images")
    p.add_argument("--out", required=True, help="run folder: checkpoints and log.jsonl")
    p.add_argument("--epochs", type=at_least(1), default=60)
    p.add_argument("--batch", type=at_least(1), default=8)
    p.add_argument("--lr", type=above(0.0), default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=200, help="linear learning-rate warm-up (default 200)")
    p.add_argument("--l2-epochs", type=int, default=1, help="epochs of plain L2 before focal L2 (default 1)")
    p.add_argument("--gamma", type=float, default=2.0, help="focal L2 exponent (Simple Pose README: 2)")
    p.add_argument("--input-size", type=int, default=512, help="square network input (multiple of 64)")
    p.add_argument(
        "--init",
        choices=("quiet-heads", "simplepose"),
        default="quiet-heads",
        help="quiet-heads: PyTorch's default body, prediction heads N(0, 0.001) (default); "
        "simplepose: N(0, 0.001) everywhere",
    )
    p.add_argument(
        "--no-augment", dest="augment", action="store_false", help="letterbox only (the overfit check)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, min(8, cores // 2)),
        help="data loader processes (default: half the cores; a sample costs ~5 ms, a step ~1 s on a CPU)",
    )
    p.add_argument("--threads", type=at_least(1), default=cores, help="PyTorch intra-op threads on a CPU")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32"),
        default="auto",
        help="auto: fp16 autocast on a GPU, bf16 on a CPU with native bf16, else fp32",
    )
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep NCHW tensors (channels_last is faster with oneDNN and on tensor cores)",
    )
    p.add_argument("--resume", help="checkpoint to continue from (last.pth or compact.pth)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (0: never)")
    p.add_argument("--val-limit", type=int, default=None, help="evaluate on the first N validation images")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke tests)")
    p.add_argument("--max-steps", type=int, default=None, help="stop each epoch after N steps (smoke tests)")
    p.add_argument("--log-every", type=at_least(1), default=20, help="log every N steps")
    p.add_argument("--save-every-min", type=above(0.0), help="also write last.pth every N minutes")
    p.add_argument(
        "--time-budget-min", type=above(0.0), help="stop cleanly, checkpoint written, after M minutes"
    )
    args = p.parse_args(argv)
    if args.input_size % 64 or args.input_size < 64:
        p.error("--input-size must be a positive multiple of 64 (5 scales of stride 4 x 2^4)")
    if bool(args.val_images) != bool(args.val_annotations):
        p.error("--val-images and --val-annotations go together")
    if args.workers < 0 or args.warmup_steps < 0 or args.l2_epochs < 0 or args.eval_every < 0:
        p.error("--workers, --warmup-steps, --l2-epochs and --eval-every must be >= 0")
    return args


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SystemExit("bkpose-train: --device cuda but PyTorch sees no GPU")
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_has_bf16() -> bool:
    """Native bf16 (AVX-512 BF16 or AMX): without it bf16 autocast is slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(device: torch.device, precision: str) -> Optional[torch.dtype]:
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def learning_rate(args: argparse.Namespace, epoch: int, step: int) -> float:
    """Linear warm-up over the first steps, then /10 at 75 % and 90 % of the epochs."""
    milestones = {max(1, int(args.epochs * f)) for f in (0.75, 0.9)}  # one drop where they coincide
    drops = sum(epoch >= m for m in milestones)
    warm = min(1.0, (step + 1) / args.warmup_steps) if args.warmup_steps else 1.0
    return args.lr * (0.1**drops) * warm


class _PhaseClock:
    """Seconds between laps (synchronising the GPU first, so each phase gets its own time)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.laps: Dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now


class Trainer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = pick_device(args.device)
        self.cuda = self.device.type == "cuda"
        if not self.cuda:
            torch.set_num_threads(args.threads)
            # denormal floats (tiny weights, Adam moments) are 10-100x slower on CPUs: the landed
            # trainer (N(0, 0.001) init) fell from 6.2 to 3.3 img/s when focal L2 began
            torch.set_flush_denormal(True)
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        np.random.seed(args.seed)
        self.model = BKPose()
        (init_simplepose if args.init == "simplepose" else init_quiet_heads)(self.model)
        self.memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        self.model = self.model.to(self.device, memory_format=self.memory_format)
        self.amp = autocast_dtype(self.device, args.precision)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda and self.amp == torch.float16)
        self.loss_config = LossConfig(gamma=args.gamma)
        self.data = CocoKeypoints(
            args.images,
            args.annotations,
            args.input_size,
            augment=args.augment,
            seed=args.seed,
            limit=args.limit,
        )
        self.sampler = EpochSampler(len(self.data), args.batch, args.seed)
        self.epoch, self.step, self.batch_in_epoch, self.best_ap = 0, 0, 0, -1.0
        os.makedirs(args.out, exist_ok=True)
        self.log_path = os.path.join(args.out, "log.jsonl")
        self.started = time.monotonic()
        self.last_save = self.started
        self.stopping = False
        self.resumed_from: Optional[Dict[str, Any]] = None
        if args.resume:
            self.load(args.resume)
        self._loader: Optional[DataLoader] = None

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "best_ap": self.best_ap,
            "rng": rng_state(),
            "args": {k: v for k, v in vars(self.args).items() if k != "resume"},
        }

    def save(self, name: str = "last.pth") -> str:
        """Write `name`; `last.pth` also refreshes `compact.pth`, the state a stretch commits."""
        path = os.path.join(self.args.out, name)
        state = self.state()
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        if name == "last.pth":
            small = compact(state)
            atomic_write(os.path.join(self.args.out, "compact.pth"), lambda tmp: torch.save(small, tmp))
        self.last_save = time.monotonic()
        return path

    def load(self, path: str) -> None:
        state = expand(torch.load(path, map_location="cpu", weights_only=True))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.best_ap = state["epoch"], state["step"], state["best_ap"]
        self.batch_in_epoch = state.get("batch_in_epoch", 0)
        set_rng_state(state["rng"])
        previous_size = state.get("args", {}).get("input_size")
        if previous_size is not None and previous_size != self.args.input_size:
            # the best score was measured at the other size: best.pth restarts at the new one
            self.best_ap = -1.0
        self.resumed_from = {
            "path": path,
            "epoch": self.epoch,
            "step": self.step,
            "input_size": previous_size,
        }

    def log(self, record: Dict[str, Any]) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ training
    def loader(self) -> DataLoader:
        self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
        if self._loader is None:
            workers = self.args.workers
            self._loader = DataLoader(
                self.data,
                batch_size=self.args.batch,
                sampler=self.sampler,
                num_workers=workers,
                pin_memory=self.cuda,
                persistent_workers=workers > 0,
                worker_init_fn=quiet_worker if workers else None,
                prefetch_factor=4 if workers else None,
            )
        return self._loader

    def request_stop(self) -> None:
        """Stop after the current step, with the checkpoint written (the stop signals' action)."""
        self.stopping = True

    def out_of_time(self) -> bool:
        budget = self.args.time_budget_min
        return budget is not None and time.monotonic() - self.started >= budget * 60

    def train_step(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        focal: bool,
        times: Optional[Dict[str, float]] = None,
    ) -> float:
        """One optimiser step; returns the loss. `times` (benchmarks) receives the seconds of
        forward, loss and backward + step."""
        clock = _PhaseClock(self.cuda and times is not None)  # no extra GPU syncs when not timing
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.args, self.epoch, self.step)
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            predictions = self.model(x)
        clock.lap("forward")
        loss, _ = multiscale_loss(predictions, target, mask, self.loss_config, focal=focal)
        clock.lap("loss")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        value = float(loss.detach())
        clock.lap("backward_step")
        if times is not None:
            times.update(clock.laps)
        return value

    def train_epoch(self) -> Dict[str, Any]:
        from tqdm import tqdm

        args, model = self.args, self.model
        model.train()
        focal = self.epoch >= args.l2_epochs
        lr = learning_rate(args, self.epoch, self.step)
        loader = self.loader()
        first = self.batch_in_epoch
        steps = len(loader) if args.max_steps is None else min(len(loader), max(0, args.max_steps - first))
        losses, data_s, compute_s, images = [], 0.0, 0.0, 0
        bar = tqdm(total=steps, desc=f"epoch {self.epoch + 1}/{args.epochs}", unit="step", file=sys.stderr)
        tick = time.perf_counter()
        for i, (x, target, mask) in enumerate(loader):
            if i >= steps:
                break
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            target, mask = target.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)
            loaded = time.perf_counter()
            losses.append(self.train_step(x, target, mask, focal))
            if self.cuda:
                torch.cuda.synchronize()
            done = time.perf_counter()
            data_s += loaded - tick
            compute_s += done - loaded
            tick = done
            images += x.shape[0]
            self.step += 1
            self.batch_in_epoch += 1
            bar.set_postfix(loss=f"{losses[-1]:.4g}", img_s=f"{images / max(data_s + compute_s, 1e-9):.1f}")
            bar.update(1)
            if self.step % args.log_every == 0:
                self.log(
                    {
                        "kind": "step",
                        "epoch": self.epoch + 1,
                        "step": self.step,
                        "loss": losses[-1],
                        "lr": learning_rate(args, self.epoch, self.step - 1),
                        "focal": focal,
                    }
                )
            if self.out_of_time():
                self.stopping = True
            if self.stopping:  # time spent, or a stop signal: the checkpoint is written below
                break
            if args.save_every_min and time.monotonic() - self.last_save >= args.save_every_min * 60:
                self.save()
        bar.close()
        finished = not self.stopping
        if finished:
            self.epoch += 1
            self.batch_in_epoch = 0
        seconds = data_s + compute_s
        return {
            "kind": "epoch" if finished else "partial_epoch",
            "epoch": self.epoch if finished else self.epoch + 1,
            "step": self.step,
            "first_batch": first,
            "loss_mean": float(np.mean(losses)) if losses else None,
            "loss_last": losses[-1] if losses else None,
            "focal": focal,
            "lr": lr,
            "images": images,
            "images_per_s": images / seconds if seconds else None,
            "data_s": data_s,
            "compute_s": compute_s,
            "precision": str(self.amp).replace("torch.", "") if self.amp else "fp32",
            "wall_time": time.time(),
        }

    def run(self) -> Dict[str, Any]:
        args = self.args
        summary: Dict[str, Any] = {}
        self.log(
            {  # the ledger says what each stretch ran: schedule, size, and where it resumed
                "kind": "start",
                "epoch": self.epoch,
                "step": self.step,
                "args": {k: v for k, v in vars(args).items() if k != "resume"},
                "resumed_from": self.resumed_from,
                "wall_time": time.time(),
            }
        )
        while self.epoch < args.epochs and not self.stopping:
            record = self.train_epoch()
            evaluate_now = record["kind"] == "epoch" and args.eval_every and self.epoch % args.eval_every == 0
            if args.val_images and evaluate_now:
                scores = evaluate(
                    self.model,
                    args.val_images,
                    args.val_annotations,
                    self.device,
                    args.input_size,
                    args.val_limit,
                )
                record["eval"] = scores
                if scores["AP"] > self.best_ap:
                    self.best_ap = scores["AP"]
                    self.save("best.pth")
            self.save()
            self.log(record)
            summary = record
            print(json.dumps({k: v for k, v in record.items() if k != "kind"}), file=sys.stderr, flush=True)
        if self.stopping:
            print(
                f"bkpose-train: stopped at epoch {self.epoch + 1}, batch {self.batch_in_epoch}; "
                f"resume with --resume {os.path.join(args.out, 'last.pth')}",
                file=sys.stderr,
            )
        return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        trainer = Trainer(args)
        with StopSignals(trainer.request_stop) as stop:  # SIGTERM at a stretch's end loses nothing
            trainer.run()
        if stop.received is not None:
            return stop.exit_code
    except KeyboardInterrupt:
        print("bkpose-train: interrupted; resume with --resume <out>/last.pth", file=sys.stderr)
        return 130
    except (OSError, ValueError) as err:
        print(f"bkpose-train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
