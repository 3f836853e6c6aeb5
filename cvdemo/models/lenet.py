"""LeNet: the classic 1998 digit recogniser, and a modernised variant (report 004).

Both take any number of input channels and any input of at least 16 pixels: an adaptive
average pool brings the last feature map to the 5x5 the fully connected layers expect (at the
native 32x32 it does nothing).
"""

from __future__ import annotations

from torch import Tensor, nn

from cvdemo.models.registry import register_model


class LeNet(nn.Module):
    """Convolutions, pooling, then fully connected layers and a linear head named `fc`."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential, fc: nn.Linear):
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.classifier = classifier
        self.fc = fc

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x))
        return self.fc(self.classifier(x.flatten(1)))


_LENET_GROUPS = (("conv1", ("features.0",)), ("conv2", ("features.3",)),
                 ("fc", ("classifier",)), ("head", ("fc",)))


@register_model(
    "lenet", family="lenet", input_size=32, min_input_size=16, groups=_LENET_GROUPS, head="fc",
    cam_layer="features", pretrained=None, mean=None, std=None, flexible_channels=True,
    description="LeNet-5 (LeCun et al. 1998): tanh, average pooling, 6-16 conv channels, about 62k parameters")
def lenet(num_classes: int, pretrained: bool, in_channels: int) -> nn.Module:
    """conv5(6) -> pool -> conv5(16) -> pool -> fc120 -> fc84 -> fc, with tanh as in the paper."""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
    )
    classifier = nn.Sequential(nn.Linear(16 * 25, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh())
    return LeNet(features, classifier, nn.Linear(84, num_classes))


_CUSTOM_GROUPS = (("conv1", ("features.0", "features.1")), ("conv2", ("features.4", "features.5")),
                  ("fc", ("classifier",)), ("head", ("fc",)))


@register_model(
    "lenet_custom", family="lenet", input_size=32, min_input_size=16, groups=_CUSTOM_GROUPS, head="fc",
    cam_layer="features", pretrained=None, mean=None, std=None, flexible_channels=True,
    description="LeNet with ReLU, max-pooling, batch norm and dropout, 32-64 conv channels; report 004")
def lenet_custom(num_classes: int, pretrained: bool, in_channels: int, dropout: float = 0.5) -> nn.Module:
    """LeNet's layout, modernised: wider convs with batch norm and ReLU, max-pooling, dropout in the MLP."""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )
    classifier = nn.Sequential(
        nn.Dropout(dropout), nn.Linear(64 * 25, 256), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(256, 128), nn.ReLU(inplace=True),
    )
    return LeNet(features, classifier, nn.Linear(128, num_classes))
