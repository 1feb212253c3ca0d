"""`bkpose-train`: the BK-Pose training recipe on COCO-format keypoint data.

    bkpose-train --images DIR --annotations FILE [--val-images DIR --val-annotations FILE]
                 --out runs/bk --epochs 60 --batch 8 [--lr 1e-3] [--resume runs/bk/last.pth]

Adam (lr 1e-3, batch 8, as the paper), plain L2 for the first `--l2-epochs` then focal L2, the
learning rate divided by 10 at 75 % and 90 % of the epochs. On a GPU: mixed precision and
channels_last. Every epoch writes `last.pth` (model, optimiser, scheduler, scaler, epoch, RNG
states: a resumed run continues exactly), `best.pth` when validation AP improves, and JSON
Lines to `log.jsonl` (loss, learning rate, images/s, data vs compute time, evaluation).
`bkpose-export --checkpoint runs/bk/best.pth` reads either checkpoint.
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

from edge.files import atomic_write
from export.model import BKPose, init_simplepose
from train.data import CocoKeypoints
from train.evaluate import evaluate
from train.loss import LossConfig, multiscale_loss


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bkpose-train", description="Train BK-Pose (focal L2, multi-scale supervision)."
    )
    p.add_argument("--images", required=True, help="training image folder")
    p.add_argument("--annotations", required=True, help="COCO person keypoints JSON of the training images")
    p.add_argument("--val-images", help="validation image folder")
    p.add_argument("--val-annotations", help="COCO person keypoints JSON of the validation images")
    p.add_argument("--out", required=True, help="run folder: checkpoints and log.jsonl")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--l2-epochs", type=int, default=1, help="epochs of plain L2 before focal L2 (default 1)")
    p.add_argument("--gamma", type=float, default=2.0, help="focal L2 exponent (Simple Pose README: 2)")
    p.add_argument("--input-size", type=int, default=512, help="square network input (multiple of 64)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="data loader processes")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--resume", help="checkpoint to continue from (last.pth)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (0: never)")
    p.add_argument("--val-limit", type=int, default=None, help="evaluate on the first N validation images")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke tests)")
    p.add_argument("--max-steps", type=int, default=None, help="stop each epoch after N steps (smoke tests)")
    p.add_argument("--log-every", type=int, default=20, help="log every N steps")
    args = p.parse_args(argv)
    if args.input_size % 64:
        p.error("--input-size must be a multiple of 64 (5 scales of stride 4 x 2^4)")
    if bool(args.val_images) != bool(args.val_annotations):
        p.error("--val-images and --val-annotations go together")
    return args


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SystemExit("bkpose-train: --device cuda but PyTorch sees no GPU")
        return torch.device("cuda")
    return torch.device("cpu")


def rng_state() -> Dict[str, Any]:
    """Every RNG's state, in types `torch.load(weights_only=True)` accepts (no numpy arrays)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = pick_device(args.device)
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        np.random.seed(args.seed)
        self.model = BKPose()
        init_simplepose(self.model)
        self.model.to(self.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        milestones = sorted({max(1, int(args.epochs * 0.75)), max(1, int(args.epochs * 0.9))})
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones, gamma=0.1)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda)
        self.loss_config = LossConfig(gamma=args.gamma)
        self.data = CocoKeypoints(
            args.images, args.annotations, args.input_size, augment=True, seed=args.seed, limit=args.limit
        )
        self.epoch, self.step, self.best_ap = 0, 0, -1.0
        os.makedirs(args.out, exist_ok=True)
        self.log_path = os.path.join(args.out, "log.jsonl")
        if args.resume:
            self.load(args.resume)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_ap": self.best_ap,
            "rng": rng_state(),
            "args": {k: v for k, v in vars(self.args).items() if k != "resume"},
        }

    def save(self, name: str) -> str:
        path = os.path.join(self.args.out, name)
        state = self.state()
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        return path

    def load(self, path: str) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.best_ap = state["epoch"], state["step"], state["best_ap"]
        set_rng_state(state["rng"])

    def log(self, record: Dict[str, Any]) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ training
    def loader(self) -> DataLoader:
        self.data.set_epoch(self.epoch)
        order = torch.Generator().manual_seed(self.args.seed * 1000 + self.epoch)
        return DataLoader(
            self.data,
            batch_size=self.args.batch,
            shuffle=True,
            generator=order,
            drop_last=True,
            num_workers=self.args.workers,
            pin_memory=self.cuda,
            persistent_workers=False,
        )

    def train_epoch(self) -> Dict[str, Any]:
        from tqdm import tqdm

        args, model = self.args, self.model
        model.train()
        focal = self.epoch >= args.l2_epochs
        loader = self.loader()
        steps = len(loader) if args.max_steps is None else min(len(loader), args.max_steps)
        losses, data_s, compute_s, images = [], 0.0, 0.0, 0
        bar = tqdm(total=steps, desc=f"epoch {self.epoch + 1}/{args.epochs}", unit="step", file=sys.stderr)
        tick = time.perf_counter()
        for i, (x, target, mask) in enumerate(loader):
            if i >= steps:
                break
            x = x.to(self.device, non_blocking=True)
            if self.cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            target, mask = target.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)
            loaded = time.perf_counter()
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.cuda):
                predictions = model(x)
            loss, _ = multiscale_loss(predictions, target, mask, self.loss_config, focal=focal)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.cuda:
                torch.cuda.synchronize()
            done = time.perf_counter()
            data_s += loaded - tick
            compute_s += done - loaded
            tick = done
            images += x.shape[0]
            self.step += 1
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4g}", img_s=f"{images / max(data_s + compute_s, 1e-9):.1f}")
            bar.update(1)
            if self.step % args.log_every == 0:
                self.log(
                    {
                        "kind": "step",
                        "epoch": self.epoch + 1,
                        "step": self.step,
                        "loss": losses[-1],
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "focal": focal,
                    }
                )
        bar.close()
        self.scheduler.step()
        self.epoch += 1
        seconds = data_s + compute_s
        return {
            "kind": "epoch",
            "epoch": self.epoch,
            "step": self.step,
            "loss_mean": float(np.mean(losses)) if losses else None,
            "loss_last": losses[-1] if losses else None,
            "focal": focal,
            "images": images,
            "images_per_s": images / seconds if seconds else None,
            "data_s": data_s,
            "compute_s": compute_s,
            "lr": self.optimizer.param_groups[0]["lr"],
        }

    def run(self) -> Dict[str, Any]:
        args = self.args
        summary: Dict[str, Any] = {}
        while self.epoch < args.epochs:
            record = self.train_epoch()
            if args.val_images and args.eval_every and self.epoch % args.eval_every == 0:
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
            self.save("last.pth")
            self.log(record)
            summary = record
            print(json.dumps({k: v for k, v in record.items() if k != "kind"}), file=sys.stderr, flush=True)
        return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        Trainer(args).run()
    except KeyboardInterrupt:
        print("bkpose-train: interrupted; resume with --resume <out>/last.pth", file=sys.stderr)
        return 130
    except (OSError, ValueError) as err:
        print(f"bkpose-train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
