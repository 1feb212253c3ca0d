"""Focal L2 loss with multi-scale supervision (BK-Pose Eq. 2-4; Simple Pose `loss_model.py`).

Per cell, with prediction s and target s*:
    st     = s - alpha        where s* >= thre      (a foreground cell)
           = 1 - s - beta     elsewhere             (a background cell)
    factor = |1 - st| ** gamma                      (easy cells weigh less)
    loss   = sum (s - s*)^2 * factor * w
w = loss mask x (eta + 1 = 3 on keypoint channels) x (0.1 on the person-mask channel). Plain L2 is
the same with factor 1 (the warm-up phase). Lower scales compare against average-pooled targets
and a bilinearly resized mask (cells below 0.5 dropped); scales are weighted 0.1/0.2/0.4/1.6/6.4
(finest first), summed over both stacks, divided by the weight total and the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from edge.layout import BKPOSE_LAYOUT, Layout


@dataclass(frozen=True)
class LossConfig:
    alpha: float = 0.1
    beta: float = 0.02
    thre: float = 0.01
    gamma: float = 2.0
    eta: float = 2.0  # keypoint channels weigh eta + 1
    person_mask_weight: float = 0.1
    scale_weights: Tuple[float, ...] = (0.1, 0.2, 0.4, 1.6, 6.4)


def channel_weights(layout: Layout, config: LossConfig, device: torch.device) -> torch.Tensor:
    w = torch.ones(layout.num_channels, device=device)
    w[layout.keypoint_start : layout.keypoint_start + layout.num_keypoints] = config.eta + 1.0
    if layout.aux_channels:
        w[layout.num_decoded_channels] = config.person_mask_weight
    return w.view(1, -1, 1, 1)


def focal_l2(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, config: LossConfig, focal: bool
) -> torch.Tensor:
    """Sum over the batch of the (focal) L2 loss; `weight` broadcasts over [N, C, H, W]."""
    pred = pred.float()
    squared = (pred - target) ** 2
    if focal:
        st = torch.where(target >= config.thre, pred - config.alpha, 1.0 - pred - config.beta)
        squared = squared * (1.0 - st).abs().pow(config.gamma)
    return (squared * weight).sum()


def scale_targets(
    target: torch.Tensor, mask: torch.Tensor, size: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    if tuple(target.shape[-2:]) == tuple(size):
        return target, mask
    small = F.adaptive_avg_pool2d(target, size)
    m = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
    return small, (m >= 0.5).to(m.dtype) * m


def multiscale_loss(
    predictions: Sequence[Sequence[torch.Tensor]],
    target: torch.Tensor,
    mask: torch.Tensor,
    config: LossConfig = LossConfig(),
    focal: bool = True,
    layout: Layout = BKPOSE_LAYOUT,
) -> Tuple[torch.Tensor, List[float]]:
    """Total loss (a scalar) and the per-scale parts, for `predictions[stack][scale]`."""
    weights = channel_weights(layout, config, target.device)
    total = target.new_zeros(())
    parts: List[float] = []
    for s, lam in enumerate(config.scale_weights):
        size = tuple(predictions[0][s].shape[-2:])
        t, m = scale_targets(target, mask, size)
        part = sum(focal_l2(stack[s], t, weights * m, config, focal) for stack in predictions)
        total = total + lam * part
        parts.append(float(part.detach()))
    return total / (sum(config.scale_weights) * target.shape[0]), parts
