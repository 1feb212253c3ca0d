"""Periodic evaluation: the model in PyTorch plus the runtime's own letterbox and Numba decoder,
scored with pycocotools (COCO keypoint AP). Nothing is exported; the numbers are those the
runtime would get from the same weights, up to ONNX Runtime's float rounding."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import cv2
import numpy as np
import torch

from edge.coco import coco_keypoint_scores, load_coco_keypoints
from edge.decode import Decoder
from edge.modelinfo import ModelInfo
from edge.preprocess import CpuPreprocessor


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    images: str,
    annotations: str,
    device: torch.device,
    input_size: int = 512,
    limit: Optional[int] = None,
) -> Dict[str, Any]:
    coco = load_coco_keypoints(annotations)
    entries = [im for im in coco["images"] if os.path.exists(os.path.join(images, im["file_name"]))][:limit]
    if not entries:
        raise ValueError(f"no image of {annotations} under {images}")
    pre = CpuPreprocessor(ModelInfo(input_width=input_size, input_height=input_size))
    decoder = Decoder()
    was_training = model.training
    model.eval()
    results: List[dict] = []
    people = 0
    try:
        for im in entries:
            frame = cv2.imread(os.path.join(images, im["file_name"]), cv2.IMREAD_COLOR)
            tensor, lb = pre(frame)
            heatmaps = model(torch.from_numpy(tensor).to(device)).float().cpu().numpy()[0]
            poses = decoder.decode(np.ascontiguousarray(heatmaps), lb)
            people += len(poses)
            results.extend(poses.to_coco_results(im["id"]))
    finally:
        model.train(was_training)
    scores = coco_keypoint_scores(coco, results, [im["id"] for im in entries])
    return {"images": len(entries), "people_found": people, **scores}
