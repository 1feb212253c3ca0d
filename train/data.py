"""COCO-format keypoint data for training: augmentation, targets, loss masks (model_spec section 5).

One sample = one image warped into the network input by one affine transform:
  * validation: the runtime's letterbox (`edge.geometry.letterbox`), so training sees what
    inference sees;
  * training: the letterbox scale times U(0.7, 1.3), a rotation U(-40, 40) degrees, a shift of up
    to 40 input pixels, a horizontal flip with probability 0.5 (keypoints swap left/right) and an
    HSV colour jitter, all with OpenCV on the CPU (in DataLoader worker processes).
Targets come from `edge.targets.render_heatmaps` (the renderer the decoder benchmarks use): 30
limb maps, 18 keypoint maps with the neck, the person mask and the keypoint max. The loss mask is
0 over crowd regions and people without keypoints (their segmentation, else their box), at
heatmap resolution. Each sample's randomness comes from (seed, epoch, index), so a resumed run
sees exactly the samples an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections import defaultdict
from typing import Dict, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from edge.geometry import letterbox
from edge.layout import BKPOSE_LAYOUT, COCO_KEYPOINTS, keypoint_flip
from edge.targets import coco_to_layout_keypoints, render_heatmaps

PAD_VALUE = 128  # the model's letterbox pad value (ModelInfo.pad_value)
ROTATION_DEG = 40.0
SCALE_RANGE = (0.7, 1.3)
SHIFT_PX = 40.0
FLIP_PROBABILITY = 0.5
HSV_JITTER = 0.2
COCO_FLIP = keypoint_flip(COCO_KEYPOINTS)


class CocoKeypoints(Dataset):
    """Images of a COCO person-keypoints file that have at least one person with keypoints."""

    def __init__(
        self,
        images: str,
        annotations: str,
        input_size: int = 512,
        augment: bool = True,
        seed: int = 0,
        limit: Optional[int] = None,
    ) -> None:
        with open(annotations) as f:
            data = json.load(f)
        by_image: Dict[int, List[dict]] = defaultdict(list)
        for ann in data["annotations"]:
            by_image[int(ann["image_id"])].append(ann)
        self.images_dir, self.input_size, self.augment, self.seed = images, input_size, augment, seed
        self.entries = [
            (im, by_image[int(im["id"])])
            for im in data["images"]
            if any(a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0) for a in by_image[int(im["id"])])
            and os.path.exists(os.path.join(images, im["file_name"]))
        ]
        if limit is not None:
            self.entries = self.entries[:limit]
        if not self.entries:
            raise ValueError(f"no annotated image of {annotations} was found under {images}")
        self.epoch = 0
        self.layout = BKPOSE_LAYOUT

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rng(self, index: int, epoch: Optional[int] = None) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, index])

    # ------------------------------------------------------------------ geometry
    def transform(
        self, width: int, height: int, rng: Optional[np.random.Generator]
    ) -> Tuple[np.ndarray, bool]:
        """2x3 affine from image pixels to input pixels (pixel centres at integers), and the flip."""
        s = self.input_size
        lb = letterbox(width, height, s, s)
        if rng is None:
            return lb.image_to_input_matrix(), False
        scale = min(lb.scale_x, lb.scale_y) * rng.uniform(*SCALE_RANGE)
        angle = rng.uniform(-ROTATION_DEG, ROTATION_DEG)
        shift = rng.uniform(-SHIFT_PX, SHIFT_PX, size=2)
        centre_in = ((width - 1) / 2.0, (height - 1) / 2.0)
        matrix = cv2.getRotationMatrix2D(centre_in, angle, scale)
        matrix[:, 2] += np.array([(s - 1) / 2.0, (s - 1) / 2.0]) - np.array(centre_in) + shift
        flip = bool(rng.random() < FLIP_PROBABILITY)
        if flip:  # x' = (s - 1) - x after the transform
            matrix = np.array([[-1.0, 0.0, s - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0, 0, 1]])
        return matrix, flip

    @staticmethod
    def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
        return points @ matrix[:, :2].T + matrix[:, 2]

    # ------------------------------------------------------------------ masks
    def region_mask(
        self, anns: List[dict], width: int, height: int, matrix: np.ndarray, want: str
    ) -> np.ndarray:
        """Input-resolution uint8 mask of crowd/keypoint-less people (`want="ignore"`) or all people."""
        s = self.input_size
        canvas = np.zeros((height, width), np.uint8)
        for ann in anns:
            ignore = bool(ann.get("iscrowd", 0)) or ann.get("num_keypoints", 0) == 0
            if want == "ignore" and not ignore:
                continue
            segmentation = ann.get("segmentation")
            if isinstance(segmentation, list) and segmentation:
                for polygon in segmentation:
                    pts = np.asarray(polygon, np.float64).reshape(-1, 2)
                    cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1)
            elif isinstance(segmentation, dict):  # RLE (crowd regions)
                from pycocotools import mask as mask_utils

                rle = segmentation
                if isinstance(rle.get("counts"), list):
                    rle = mask_utils.frPyObjects(rle, height, width)
                canvas |= mask_utils.decode(rle).astype(np.uint8)
            elif ann.get("bbox"):
                x, y, w, h = ann["bbox"]
                canvas[max(int(y), 0) : int(math.ceil(y + h)), max(int(x), 0) : int(math.ceil(x + w))] = 1
        return cv2.warpAffine(canvas, matrix, (s, s), flags=cv2.INTER_NEAREST, borderValue=0)

    def to_heatmap(self, mask: np.ndarray) -> np.ndarray:
        stride = self.layout.stride
        size = self.input_size // stride
        return cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)

    # ------------------------------------------------------------------ sample
    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Tuple[torch.Tensor, ...]:
        """Sample `index`, or `(epoch, index)` as `EpochSampler` yields it (persistent workers keep
        their own copy of the dataset, so the epoch travels with the index)."""
        epoch, index = key if isinstance(key, tuple) else (None, key)
        info, anns = self.entries[index]
        image = cv2.imread(os.path.join(self.images_dir, info["file_name"]), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"{info['file_name']}: unreadable image")
        height, width = image.shape[:2]
        rng = self.rng(index, epoch) if self.augment else None
        matrix, flip = self.transform(width, height, rng)
        s = self.input_size
        warped = cv2.warpAffine(image, matrix, (s, s), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)
        if rng is not None:
            warped = hsv_jitter(warped, rng)

        people = [a for a in anns if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
        coco = np.asarray([a["keypoints"] for a in people], np.float64).reshape(-1, len(COCO_KEYPOINTS), 3)
        coco[:, :, :2] = self.apply(matrix, coco[:, :, :2])
        if flip:
            coco = coco[:, list(COCO_FLIP)]
        inside = (
            (coco[:, :, 0] >= -0.5)
            & (coco[:, :, 0] <= s - 0.5)
            & (coco[:, :, 1] >= -0.5)
            & (coco[:, :, 1] <= s - 0.5)
        )
        coco[:, :, 2] = np.where(inside, coco[:, :, 2], 0)
        layout_people = coco_to_layout_keypoints(coco, self.layout)

        person = self.to_heatmap(self.region_mask(anns, width, height, matrix, "all"))
        person = cv2.erode(person, np.ones((3, 3), np.uint8))
        targets = render_heatmaps(layout_people, self.layout, (s // self.layout.stride,) * 2, person)
        ignore = self.to_heatmap(self.region_mask(anns, width, height, matrix, "ignore"))
        loss_mask = (ignore < 0.5).astype(np.float32)

        tensor = torch.from_numpy(warped.transpose(2, 0, 1).astype(np.float32) / 255.0)
        return tensor, torch.from_numpy(targets), torch.from_numpy(loss_mask[None])


class EpochSampler(Sampler):
    """Shuffled `(epoch, index)` keys: the order of epoch e comes from (seed, e) alone, so a run
    resumed at batch k of an epoch skips exactly the samples it had seen, without loading them."""

    def __init__(self, size: int, batch: int, seed: int) -> None:
        self.size, self.batch, self.seed = size, batch, seed
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        return self.size // self.batch

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.start_batch) * self.batch

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        used = order[: self.batches_per_epoch() * self.batch]  # drop_last
        for i in used[self.start_batch * self.batch :].tolist():
            yield self.epoch, i


def quiet_worker(_: int) -> None:
    """Loader workers use one thread each: the training step owns the cores. They ignore SIGINT
    and SIGTERM, which a terminal, `docker stop` or systemd send to the whole process group: the
    trainer handles them (checkpoint, then it stops its workers), and a worker dying first would
    crash it before the checkpoint."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, amount: float = HSV_JITTER) -> np.ndarray:
    """Scale saturation and value, shift hue, each by up to `amount` (Simple Pose's HSV tint)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[:, :, 0] = (hsv[:, :, 0] + rng.uniform(-amount, amount) * 180) % 180
    hsv[:, :, 1] *= 1.0 + rng.uniform(-amount, amount)
    hsv[:, :, 2] *= 1.0 + rng.uniform(-amount, amount)
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
