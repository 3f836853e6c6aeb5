"""A small, fast residual network for 32x32 images, in the style of the "ResNet-9" nets that
train CIFAR-10 to 94% in minutes (Page 2018, "How to train your ResNet").

stem: conv-bn-relu; stage1: conv-bn-relu + max-pool, then a residual block of two convs;
stage2: conv-bn-relu + max-pool; stage3: like stage1; then global max-pool and a linear head.
Channels are width, 2*width, 4*width, 8*width (width=64 is the original ResNet-9).
"""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from cvdemo.errors import ModelError
from cvdemo.models.registry import register_model


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + f(x) with f two conv-bn-relu layers; `last_bn` is f's final batch norm."""

    def __init__(self, channels: int):
        super().__init__()
        self.branch = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return cast(nn.BatchNorm2d, cast(nn.Sequential, self.branch[1])[1])

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)


class CifarResNet(nn.Module):
    """ResNet-9 layout: stem, three down-sampling stages (two with a residual block), max-pool, linear head."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64):
        super().__init__()
        w = width
        self.stem = conv_bn(in_channels, w)
        self.stage1 = nn.Sequential(conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w))
        self.stage2 = nn.Sequential(conv_bn(2 * w, 4 * w), nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


@register_model(
    "cifar_resnet", family="cifar_resnet", input_size=32, min_input_size=8,
    groups=(("stem", ("stem",)), ("stage1", ("stage1",)), ("stage2", ("stage2",)), ("stage3", ("stage3",)),
            ("head", ("fc",))),
    head="fc", cam_layer="stage3", pretrained=None, mean=None, std=None, flexible_channels=True,
    description="ResNet-9 style fast CIFAR net (Page 2018), 6.6M parameters at width 64 (width=32: 1.6M)")
def cifar_resnet(num_classes: int, pretrained: bool, in_channels: int, width: int = 64,
                 zero_init_residual: bool = False) -> nn.Module:
    """The fast CIFAR ResNet; `width` sets the stem's channels (doubling per stage)."""
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 1024:
        raise ModelError(f"cifar_resnet's width must be a whole number from 1 to 1024, not {width!r}")
    model = CifarResNet(num_classes, in_channels, width)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Residual):
                nn.init.zeros_(m.last_bn.weight)
    return model


# -- a deep network with and without skip connections (the "why residual connections" lesson) -------------

class Block(nn.Module):
    """He et al.'s basic block without batch norm: conv-relu, conv, then relu(x + f(x)); `skip=False` drops
    the `x +`, which turns a stack of these into a "plain" network (same depth, same weights). Without batch
    norm (as before 2015) nothing but the skips keeps a deep network's gradients from vanishing on their
    way back to the first layers: the effect the "why residual connections" lesson shows."""

    def __init__(self, channels: int, skip: bool):
        super().__init__()
        self.skip = skip
        self.branch = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(channels, channels, 3, padding=1))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch(x)
        return self.relu(x + out if self.skip else out)


def conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class DeepNet(nn.Module):
    """The CIFAR "ResNet-20" layout without batch norm: a stem, three stages of `blocks` basic blocks (width,
    2*width, 4*width channels; the second and third stage start by halving the resolution), average pooling,
    a linear head."""

    def __init__(self, num_classes: int, in_channels: int, width: int, blocks: int, skip: bool):
        super().__init__()
        w = width
        self.stem = conv_relu(in_channels, w)

        def stage(cin: int, cout: int, down: bool) -> nn.Sequential:
            first = [conv_relu(cin, cout), nn.MaxPool2d(2)] if down else []
            return nn.Sequential(*first, *(Block(cout, skip) for _ in range(blocks)))

        self.stage1, self.stage2, self.stage3 = stage(w, w, False), stage(w, 2 * w, True), stage(2 * w, 4 * w, True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


_DEEP_GROUPS = (("stem", ("stem",)), ("stage1", ("stage1",)), ("stage2", ("stage2",)), ("stage3", ("stage3",)),
                ("head", ("fc",)))


def _deep(num_classes: int, in_channels: int, width: int, blocks: int, skip: bool) -> nn.Module:
    for name, value, top in (("width", width, 256), ("blocks", blocks, 64)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ModelError(f"the deep network's {name} must be a whole number from 1 to {top}, not {value!r}")
    return DeepNet(num_classes, in_channels, width, blocks, skip)


@register_model(
    "deep_resnet", family="cifar_resnet", input_size=16, min_input_size=8, groups=_DEEP_GROUPS, head="fc",
    cam_layer="stage3", pretrained=None, mean=None, std=None, flexible_channels=True,
    description="ResNet-20 style (He et al. 2016) without batch norm: 3 stages of 3 blocks with skips, 22 layers")
def deep_resnet(num_classes: int, pretrained: bool, in_channels: int, width: int = 16, blocks: int = 3,
                zero_init_residual: bool = False) -> nn.Module:
    """The deep residual network; `blocks` per stage (3 gives 22 weight layers)."""
    model = _deep(num_classes, in_channels, width, blocks, skip=True)
    if zero_init_residual:  # each block starts as the identity: its branch's last convolution is zero
        for m in model.modules():
            if isinstance(m, Block):
                nn.init.zeros_(cast(nn.Conv2d, m.branch[2]).weight)
    return model


@register_model(
    "deep_plain", family="cifar_resnet", input_size=16, min_input_size=8, groups=_DEEP_GROUPS, head="fc",
    cam_layer="stage3", pretrained=None, mean=None, std=None, flexible_channels=True,
    description="deep_resnet without its skip connections: the same 22 layers stacked plainly (He et al.'s 'plain')")
def deep_plain(num_classes: int, pretrained: bool, in_channels: int, width: int = 16, blocks: int = 3) -> nn.Module:
    """The same network as deep_resnet with every `x +` removed."""
    return _deep(num_classes, in_channels, width, blocks, skip=False)
