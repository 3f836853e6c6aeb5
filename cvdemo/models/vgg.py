"""VGG (Simonyan & Zisserman 2014), configurations A, B, D and E, with and without batch norm.

The layer groups follow the five convolutional blocks, each ending at its max-pool, then the
two hidden fully connected layers, then the head. Indices into `features` are derived from the
configurations in the paper, so they need no torchvision import.
"""

from __future__ import annotations

from torch import nn

from cvdemo.models.layout import IMAGENET_MEAN, IMAGENET_STD, split_after
from cvdemo.models.registry import register_model
from cvdemo.models.weights import build_torchvision

# Convolutions per block for each depth (the paper's configurations A, B, D, E).
_CONVS_PER_BLOCK = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def _vgg_groups(depth: int, batch_norm: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
    per_conv = 3 if batch_norm else 2  # conv (+ bn) + relu
    ends, index = [], 0
    for convs in _CONVS_PER_BLOCK[depth]:
        index += convs * per_conv  # the pool's index
        ends.append(index)
        index += 1
    blocks = split_after("features", index, ends)
    return (*((f"block{i + 1}", b) for i, b in enumerate(blocks)),
            ("classifier", tuple(f"classifier.{i}" for i in range(6))), ("head", ("classifier.6",)))


def _register(depth: int, batch_norm: bool) -> None:
    name = f"vgg{depth}{'_bn' if batch_norm else ''}"
    params = {11: "133M", 13: "133M", 16: "138M", 19: "144M"}[depth]

    @register_model(
        name, family="vgg", input_size=224, min_input_size=32, groups=_vgg_groups(depth, batch_norm),
        head="classifier.6", cam_layer="features", pretrained="torchvision", mean=IMAGENET_MEAN,
        std=IMAGENET_STD, flexible_channels=False,
        description=f"VGG-{depth}{' with batch norm' if batch_norm else ''} (Simonyan & Zisserman 2014), "
                    f"{params} parameters at 1000 classes")
    def build(num_classes: int, pretrained: bool, in_channels: int) -> nn.Module:
        return build_torchvision(name, name, pretrained, num_classes=num_classes)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"torchvision's {name}, optionally with ImageNet weights."


for _depth in (11, 13, 16, 19):
    for _bn in (False, True):
        _register(_depth, _bn)
