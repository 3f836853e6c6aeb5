"""ResNets (He et al. 2015) and ResNeXt (Xie et al. 2016) from torchvision.

Six layer groups, always in this order: stem (conv1, bn1), layer1..layer4, head (fc); report
000's discriminative learning rates give one multiplier to each. `zero_init_residual=True`
starts every residual branch's last batch norm at zero, so each block begins as the identity
(Goyal et al. 2017; report 002); it is for training from scratch only.
"""

from __future__ import annotations

from torch import nn

from cvdemo.errors import ModelError
from cvdemo.models.layout import IMAGENET_MEAN, IMAGENET_STD
from cvdemo.models.registry import register_model
from cvdemo.models.weights import build_torchvision

RESNET_GROUPS = (("stem", ("conv1", "bn1")), ("layer1", ("layer1",)), ("layer2", ("layer2",)),
                 ("layer3", ("layer3",)), ("layer4", ("layer4",)), ("head", ("fc",)))

_MODELS = {
    "resnet18": "ResNet-18 (He et al. 2015), basic blocks, 11.7M parameters at 1000 classes",
    "resnet34": "ResNet-34 (He et al. 2015), basic blocks, 21.8M parameters at 1000 classes",
    "resnet50": "ResNet-50 (He et al. 2015), bottleneck blocks, 25.6M parameters; report 000",
    "resnet101": "ResNet-101 (He et al. 2015), bottleneck blocks, 44.5M parameters at 1000 classes",
    "resnet152": "ResNet-152 (He et al. 2015), bottleneck blocks, 60.2M parameters at 1000 classes",
    "resnext50_32x4d": "ResNeXt-50 32x4d (Xie et al. 2016), grouped bottlenecks, 25.0M parameters",
}


def _register(name: str, description: str) -> None:
    @register_model(
        name, family="resnet", input_size=224, min_input_size=32, groups=RESNET_GROUPS, head="fc",
        cam_layer="layer4", pretrained="torchvision", mean=IMAGENET_MEAN, std=IMAGENET_STD,
        flexible_channels=False, description=description)
    def build(num_classes: int, pretrained: bool, in_channels: int, zero_init_residual: bool = False) -> nn.Module:
        if zero_init_residual and pretrained:
            raise ModelError(f"zero_init_residual is an initialisation for training from scratch and would "
                             f"erase {name}'s pretrained residual branches; turn it off or pretrained off")
        return build_torchvision(name, name, pretrained, num_classes=num_classes,
                                 zero_init_residual=zero_init_residual)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"torchvision's {name}, optionally with ImageNet weights and zero-initialised residuals."


for _name, _description in _MODELS.items():
    _register(_name, _description)
