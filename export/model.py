"""The BK-Pose network in PyTorch (model_spec section 4): the only module that defines it.

Two stacked 5-scale hourglasses built from BlazeBlocks (channels 64, 96, 128, 160, 192) behind a
small residual stem; every scale of every stack has an attention head (channel SE, then a
CBAM-style spatial gate) and a linear 1x1 prediction of the 50 layout channels.

Stack 1's prediction and head features at scale s are merged (1x1 conv + BN each, Simple Pose
`posenet.py`) and feed stack 2 at the same scale: at s = 0 they are added to stack 2's input, at
s >= 1 to stack 2's down path where it reaches that scale. (Simple Pose adds the lower-scale
merges to stack 2's *outputs*, where only the training-only heads see them; in the deployed graph
they would be dead. Feeding them into the down path makes every scale of stack 1 reach the
exported heatmaps, as the BK-Pose paper describes: "feature maps at each scale feed both that
scale's heatmap and the next stack".)

In training mode `forward` returns all 10 predictions, `[[stack1 s0..s4], [stack2 s0..s4]]`,
for multi-scale supervision. In eval mode (export, inference) it returns only stack 2's
full-resolution prediction `[N, 50, H/4, W/4]`, and stack 2's lower-scale heads are not run.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge.layout import BKPOSE_LAYOUT

CHANNELS: Tuple[int, ...] = (64, 96, 128, 160, 192)
BLOCKS_PER_POSITION = 3
NUM_STACKS = 2
NUM_OUTPUTS = BKPOSE_LAYOUT.num_channels
RANDOM_OUTPUT_PEAK = 1.0  # largest |value| of an untrained model's output maps (see init_random)


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Convolution without bias followed by BatchNorm (folded into the convolution at export)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class BlazeBlock(nn.Module):
    """Depthwise 3x3 + BN, pointwise 1x1 + BN, plus a shortcut; ReLU after the sum.

    The shortcut is max-pooled for stride 2, zero-padded with channels when widening (MediaPipe's
    channel pad) and projected by 1x1 conv + BN when narrowing.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.depthwise = conv_bn(cin, cin, 3, stride, groups=cin)
        self.pointwise = conv_bn(cin, cout, 1)
        self.pool = nn.MaxPool2d(2, 2) if stride == 2 else None
        self.project = conv_bn(cin, cout, 1) if cout < cin else None

    def forward(self, x: Tensor) -> Tensor:
        main = self.pointwise(self.depthwise(x))
        skip = self.pool(x) if self.pool is not None else x
        if self.project is not None:
            skip = self.project(skip)
        elif self.cout > self.cin:
            skip = F.pad(skip, (0, 0, 0, 0, 0, self.cout - self.cin))
        return F.relu(main + skip)


def blaze_stack(cin: int, cout: int, count: int, stride: int = 1) -> nn.Sequential:
    """`count` BlazeBlocks: the first changes channels and stride, the rest keep them."""
    return nn.Sequential(BlazeBlock(cin, cout, stride), *(BlazeBlock(cout, cout) for _ in range(count - 1)))


class Residual(nn.Module):
    """Bottleneck residual of the stem (Simple Pose `layers_transposed.Residual`)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.body = nn.Sequential(
            conv_bn(cin, mid, 1), nn.ReLU(inplace=True),
            conv_bn(mid, mid, 3), nn.ReLU(inplace=True),
            conv_bn(mid, cout, 1),
        )  # fmt: skip
        self.skip = conv_bn(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(x) if self.skip is not None else x
        return F.relu(self.body(x) + skip)


class Stem(nn.Module):
    """conv7x7/2 (3->32) at 1/2 resolution, Residual 32->64, max-pool, Residual 64->64 at 1/4."""

    def __init__(self, width: int = CHANNELS[0]) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv_bn(3, width // 2, 7, 2), nn.ReLU(inplace=True))
        self.res1 = Residual(width // 2, width)
        self.pool = nn.MaxPool2d(2, 2)
        self.res2 = Residual(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.res2(self.pool(self.res1(self.conv(x))))


class HourglassLevel(nn.Module):
    """One hourglass level d: skip branch at this scale, recursion one scale down, upsample and sum.

    Returns the level's output followed by the features of every lower scale, so a full hourglass
    yields 5 feature maps, finest first.
    """

    def __init__(
        self, depth: int, channels: Sequence[int] = CHANNELS, blocks: int = BLOCKS_PER_POSITION
    ) -> None:
        super().__init__()
        self.depth = depth
        here, below = channels[depth], channels[depth + 1]
        self.up = blaze_stack(here, here, blocks)
        self.down = blaze_stack(here, below, blocks, stride=2)
        if depth + 2 < len(channels):
            self.inner: nn.Module = HourglassLevel(depth + 1, channels, blocks)
        else:
            self.inner = blaze_stack(below, below, blocks)
        self.back = blaze_stack(below, here, blocks)
        self.after_upsample = BlazeBlock(here, here)

    def forward(self, x: Tensor, inject: Sequence[Tensor] = ()) -> List[Tensor]:
        """`inject[s]` (stack 2 only) is added where the down path reaches scale s (s >= 1)."""
        low = self.down(x)
        if inject:
            low = low + inject[self.depth + 1]
        inner = self.inner(low, inject) if isinstance(self.inner, HourglassLevel) else [self.inner(low)]
        up = F.interpolate(self.back(inner[0]), scale_factor=2.0, mode="nearest")
        return [self.up(x) + self.after_upsample(up), *inner]


class SpatialGate(nn.Module):
    """x * sigmoid(conv7x7([mean over channels, max over channels])): where to look (CBAM)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class SqueezeExcite(nn.Module):
    """Channel attention: global average, bottleneck of 1x1 convolutions, sigmoid scale."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        w = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(w))))


class ScaleHead(nn.Module):
    """Per-scale head: two BlazeBlocks, SE then spatial attention; returns (features, prediction)."""

    def __init__(self, channels: int, outputs: int = NUM_OUTPUTS) -> None:
        super().__init__()
        self.blocks = blaze_stack(channels, channels, 2)
        self.channel_attention = SqueezeExcite(channels)
        self.spatial_attention = SpatialGate()
        self.predict = nn.Conv2d(channels, outputs, 1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        h = self.spatial_attention(self.channel_attention(self.blocks(x)))
        return h, self.predict(h)


class Merge(nn.Module):
    """Stack-1 prediction and head features mapped back to feature space (1x1 conv + BN each)."""

    def __init__(self, channels: int, outputs: int = NUM_OUTPUTS) -> None:
        super().__init__()
        self.from_prediction = conv_bn(outputs, channels, 1)
        self.from_features = conv_bn(channels, channels, 1)

    def forward(self, features: Tensor, prediction: Tensor) -> Tensor:
        return self.from_prediction(prediction) + self.from_features(features)


class BKPose(nn.Module):
    """BK-Pose: stem, 2 hourglass stacks with per-scale attention heads, cross-stack merges."""

    def __init__(
        self,
        channels: Sequence[int] = CHANNELS,
        blocks: int = BLOCKS_PER_POSITION,
        stacks: int = NUM_STACKS,
        outputs: int = NUM_OUTPUTS,
    ) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.stem = Stem(self.channels[0])
        self.hourglasses = nn.ModuleList(HourglassLevel(0, self.channels, blocks) for _ in range(stacks))
        self.heads = nn.ModuleList(
            nn.ModuleList(ScaleHead(c, outputs) for c in self.channels) for _ in range(stacks)
        )
        self.merges = nn.ModuleList(
            nn.ModuleList(Merge(c, outputs) for c in self.channels) for _ in range(stacks - 1)
        )

    def forward(self, image: Tensor) -> Union[Tensor, List[List[Tensor]]]:
        if self.training:
            return self.all_predictions(image)
        return self._run(image, last_full_resolution_only=True)[-1][0]

    def all_predictions(self, image: Tensor) -> List[List[Tensor]]:
        """Predictions of every stack at every scale, finest first (what training supervises)."""
        return self._run(image, last_full_resolution_only=False)

    def _run(self, image: Tensor, last_full_resolution_only: bool) -> List[List[Tensor]]:
        x = self.stem(image)
        cache: List[Tensor] = []
        outputs: List[List[Tensor]] = []
        last = len(self.hourglasses) - 1
        for n, hourglass in enumerate(self.hourglasses):
            feats = hourglass(x, cache)
            scales = 1 if (n == last and last_full_resolution_only) else len(feats)
            preds: List[Tensor] = []
            cache = []
            for s in range(scales):
                h, pred = self.heads[n][s](feats[s])
                preds.append(pred)
                if n < last:
                    cache.append(self.merges[n][s](h, pred))
            if n < last:
                x = x + cache[0]
            outputs.append(preds)
        return outputs


def init_quiet_heads(model: BKPose) -> None:
    """Training init: PyTorch's default (Kaiming-uniform) body, prediction heads N(0, 0.001), bias 0.

    The default init makes every linear head output values in the tens, so the first hundreds of
    steps only pull the maps back to 0..1 (loss ~9000 at step 1 against ~140); Simple Pose's
    N(0, 0.001) everywhere starts quiet but leaves BatchNorm dividing near-zero depthwise outputs.
    Quiet heads on a default body start at the loss of an all-zero prediction with healthy features.
    """
    for stack in model.heads:
        for head in stack:
            nn.init.normal_(head.predict.weight, std=0.001)
            nn.init.zeros_(head.predict.bias)


def init_simplepose(model: nn.Module) -> None:
    """Simple Pose's training initialisation: conv weights N(0, 0.001), zero bias, BN (1, 0)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def init_random(model: BKPose, seed: int, calibration: Tensor) -> None:
    """Deterministic untrained weights with realistic activation ranges, for benchmarks and tests.

    Kaiming-initialised convolutions, then BatchNorm statistics measured on `calibration` images,
    so every layer sees unit-scale activations as in a trained network (an N(0, 0.001) model
    outputs near-zero maps, which would make FP16 overflow and INT8 calibration checks vacuous).
    """
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            m.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()
            m.momentum = None  # cumulative average over the calibration batches
    was_training = model.training
    model.train()
    for image in calibration.split(1):
        model.all_predictions(image)
    # The last stack's predictions feed nothing else: shift and scale them so that, over the
    # calibration images, each channel is centred on 0 and peaks at RANDOM_OUTPUT_PEAK, the range
    # of a trained model's heatmaps (parity tolerances and the decoder then see real magnitudes).
    model.eval()
    outputs = [model.all_predictions(image)[-1] for image in calibration.split(1)]
    for s, head in enumerate(model.heads[-1]):
        values = torch.cat([o[s] for o in outputs])
        mean = values.mean(dim=(0, 2, 3))
        spread = (values - mean.view(1, -1, 1, 1)).abs().amax(dim=(0, 2, 3)).clamp_min(1e-6)
        scale = RANDOM_OUTPUT_PEAK / spread
        head.predict.weight.mul_(scale.view(-1, 1, 1, 1))
        head.predict.bias.copy_((head.predict.bias - mean) * scale)
    model.train(was_training)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def profile(
    model: BKPose, height: int = 512, width: int = 512, training_graph: bool = False
) -> Dict[str, int]:
    """Parameters and multiply-accumulates of the graph that runs at `height` x `width`.

    Counts only modules that execute (the export graph skips stack 2's lower-scale heads).
    MACs are those of convolutions: weights x output pixels; pooling, adds, upsampling and
    BatchNorm (folded away at export) are not counted, as in model_spec section 4.4.
    """
    executed: Dict[nn.Module, int] = {}

    def hook(module: nn.Module, inputs: Tuple[Tensor, ...], output: Tensor) -> None:
        macs = 0
        if isinstance(module, nn.Conv2d):
            macs = module.weight.numel() * output.shape[-2] * output.shape[-1]
        executed[module] = executed.get(module, 0) + macs

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        image = torch.zeros(1, 3, height, width)
        if training_graph:
            model.all_predictions(image)
        else:
            model(image)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {
        "parameters": sum(count_parameters(m) for m in executed),
        "macs": sum(executed.values()),
        "input_height": height,
        "input_width": width,
    }
