"""MobileNet v2 (Sandler et al. 2018) and v3 (Howard et al. 2019) from torchvision.

Groups: the stem, one group per feature-map resolution (56, 28, 14 and 7 px at 224 input),
the final 1x1 convolution, the hidden classifier layer (v3 only), and the head.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cvdemo.models.layout import IMAGENET_MEAN, IMAGENET_STD, span
from cvdemo.models.registry import register_model
from cvdemo.models.weights import build_torchvision


def _groups(stages: list[tuple[int, int]], classifier_len: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`stages`: (start, stop) ranges over `features` for stem, stages and head conv, in order."""
    names = ["stem", *(f"stage{i}" for i in range(1, len(stages) - 1)), "head_conv"]
    groups = [(n, span("features", a, b)) for n, (a, b) in zip(names, stages, strict=True)]
    if classifier_len > 2:  # v3: Linear, Hardswish, Dropout before the head
        groups.append(("classifier", span("classifier", 0, classifier_len - 1)))
    groups.append(("head", (f"classifier.{classifier_len - 1}",)))
    return tuple(groups)


_COMMON: dict[str, Any] = dict(family="mobilenet", input_size=224, min_input_size=32, cam_layer="features",
               pretrained="torchvision", mean=IMAGENET_MEAN, std=IMAGENET_STD, flexible_channels=False)


@register_model(
    "mobilenet_v2", groups=_groups([(0, 2), (2, 4), (4, 7), (7, 14), (14, 18), (18, 19)], 2),
    head="classifier.1", description="MobileNetV2 (Sandler et al. 2018), inverted residuals, 3.5M parameters",
    **_COMMON)
def mobilenet_v2(num_classes: int, pretrained: bool, in_channels: int) -> nn.Module:
    """torchvision's MobileNetV2, optionally with ImageNet weights."""
    return build_torchvision("mobilenet_v2", "mobilenet_v2", pretrained, num_classes=num_classes)


@register_model(
    "mobilenet_v3_small", groups=_groups([(0, 1), (1, 2), (2, 4), (4, 9), (9, 12), (12, 13)], 4),
    head="classifier.3", description="MobileNetV3-Small (Howard et al. 2019), 2.5M parameters", **_COMMON)
def mobilenet_v3_small(num_classes: int, pretrained: bool, in_channels: int) -> nn.Module:
    """torchvision's MobileNetV3-Small, optionally with ImageNet weights."""
    return build_torchvision("mobilenet_v3_small", "mobilenet_v3_small", pretrained, num_classes=num_classes)


@register_model(
    "mobilenet_v3_large", groups=_groups([(0, 2), (2, 4), (4, 7), (7, 13), (13, 16), (16, 17)], 4),
    head="classifier.3", description="MobileNetV3-Large (Howard et al. 2019), 5.5M parameters", **_COMMON)
def mobilenet_v3_large(num_classes: int, pretrained: bool, in_channels: int) -> nn.Module:
    """torchvision's MobileNetV3-Large, optionally with ImageNet weights."""
    return build_torchvision("mobilenet_v3_large", "mobilenet_v3_large", pretrained, num_classes=num_classes)
