"""AlexNet (Krizhevsky et al. 2012): torchvision's, a small from-scratch one with LRN, and one
with frozen pretrained features plus a trainable skip connection."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from cvdemo.models.layout import IMAGENET_MEAN, IMAGENET_STD, split_after
from cvdemo.models.registry import register_model
from cvdemo.models.weights import build_torchvision

# torchvision's AlexNet: features = conv relu pool conv relu pool conv relu conv relu conv relu pool
_TV_BLOCKS = split_after("features", 13, (2, 5, 12))
_TV_GROUPS = (
    ("conv1", _TV_BLOCKS[0]), ("conv2", _TV_BLOCKS[1]), ("conv3_5", _TV_BLOCKS[2]),
    ("classifier", tuple(f"classifier.{i}" for i in range(6))), ("head", ("classifier.6",)),
)


@register_model(
    "alexnet", family="alexnet", input_size=224, min_input_size=64, groups=_TV_GROUPS,
    head="classifier.6", cam_layer="features", pretrained="torchvision", mean=IMAGENET_MEAN,
    std=IMAGENET_STD, flexible_channels=False,
    description="AlexNet (Krizhevsky et al. 2012), torchvision's single-GPU variant; needs 64 px or more")
def alexnet(num_classes: int, pretrained: bool, in_channels: int) -> nn.Module:
    """torchvision's AlexNet, optionally with ImageNet weights."""
    return build_torchvision("alexnet", "alexnet", pretrained, num_classes=num_classes)


class AlexNetLRN(nn.Module):
    """AlexNet's layer pattern scaled to 64x64 input, with local response normalisation after conv1 and conv2."""

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 5, stride=2, padding=2), nn.ReLU(inplace=True),        # 0, 1
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, stride=2),  # 2, 3
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True),                            # 4, 5
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, stride=2),  # 6, 7
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),                           # 8, 9
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),                           # 10, 11
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),                           # 12, 13
            nn.MaxPool2d(3, stride=2),                                                          # 14
        )
        self.avgpool = nn.AdaptiveAvgPool2d(3)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 9, 1024), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(1024, 1024), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.fc(self.classifier(x.flatten(1)))


_LRN_BLOCKS = split_after("features", 15, (3, 7, 14))


@register_model(
    "alexnet_lrn", family="alexnet", input_size=64, min_input_size=32,
    groups=(("conv1", _LRN_BLOCKS[0]), ("conv2", _LRN_BLOCKS[1]), ("conv3_5", _LRN_BLOCKS[2]),
            ("classifier", ("classifier",)), ("head", ("fc",))),
    head="fc", cam_layer="features", pretrained=None, mean=None, std=None, flexible_channels=True,
    description="AlexNet with local response normalisation, sized for 64x64 input, from scratch; report 004")
def alexnet_lrn(num_classes: int, pretrained: bool, in_channels: int, dropout: float = 0.5) -> nn.Module:
    """A from-scratch AlexNet for small images: 5 convs (LRN after the first two), 3 max-pools, 3 linears."""
    return AlexNetLRN(num_classes, in_channels, dropout)


class FrozenSequential(nn.Sequential):
    """A Sequential of convolutions and parameter-free layers whose weights never train.

    Its parameters are created with requires_grad=False, and the forward pass uses detached
    copies of them, so even if something later sets requires_grad=True again (a trainer
    "unfreezing" the whole model) no gradient ever reaches them and optimizers skip them.
    Gradients still flow through to the input, so Grad-CAM on this module's output works.
    """

    def __init__(self, layers: nn.Sequential):
        super().__init__(*layers)
        for layer in self:
            if not isinstance(layer, nn.Conv2d) and any(True for _ in layer.parameters()):
                raise TypeError(f"FrozenSequential cannot freeze a {type(layer).__name__}")
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self:
            if isinstance(layer, nn.Conv2d):
                bias = None if layer.bias is None else layer.bias.detach()
                x = F.conv2d(x, layer.weight.detach(), bias, layer.stride, layer.padding,
                             layer.dilation, layer.groups)
            else:
                x = layer(x)
        return x


class AlexNetSkip(nn.Module):
    """Frozen AlexNet features, a trainable shortcut from the input around them, and an MLP head.

    The shortcut (a strided conv of the raw input, pooled to 3x3) carries the colour and
    layout information the deep features discard; it is concatenated with the features
    pooled to 3x3. Inputs under 64 px (AlexNet's minimum) are upsampled for the feature branch only.
    """

    MIN_FEATURE_INPUT = 64

    def __init__(self, features: nn.Sequential, num_classes: int, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        self.features = FrozenSequential(features)
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.skip = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(3),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear((256 + 64) * 9, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        )
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        small = min(x.shape[-2:])
        deep_in = x
        if small < self.MIN_FEATURE_INPUT:
            scale = self.MIN_FEATURE_INPUT / small
            deep_in = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        deep = self.pool(self.features(deep_in)).flatten(1)
        shortcut = self.skip(x).flatten(1)
        return self.fc(self.classifier(torch.cat([deep, shortcut], dim=1)))


@register_model(
    "alexnet_skip", family="alexnet", input_size=224, min_input_size=16, weights_from="alexnet",
    pretrained_head=False,
    groups=(("features", ("features",)), ("skip", ("skip",)), ("classifier", ("classifier",)),
            ("head", ("fc",))),
    head="fc", cam_layer="features", pretrained="torchvision", mean=IMAGENET_MEAN, std=IMAGENET_STD,
    flexible_channels=False,
    description="Frozen ImageNet AlexNet features + trainable input skip connection + MLP head; report 001")
def alexnet_skip(num_classes: int, pretrained: bool, in_channels: int, hidden: int = 512,
                 dropout: float = 0.5) -> nn.Module:
    """AlexNet's convolutional features (ImageNet weights if `pretrained`, else random), always frozen."""
    base = build_torchvision("alexnet_skip", "alexnet", pretrained)
    return AlexNetSkip(cast(nn.Sequential, base.features), num_classes, hidden, dropout)
