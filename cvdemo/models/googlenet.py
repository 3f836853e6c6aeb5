"""GoogLeNet / Inception v1 (Szegedy et al. 2014), without the auxiliary classifiers.

torchvision's ImageNet weights were ported from TensorFlow and expect pixels scaled to [-1, 1];
instead of torchvision's `transform_input` (which converts ImageNet-normalised input), we build
with transform_input=False and declare mean = std = 0.5, which is the same thing done once.
"""

from __future__ import annotations

from torch import nn

from cvdemo.models.layout import HALF
from cvdemo.models.registry import register_model
from cvdemo.models.weights import build_torchvision


@register_model(
    "googlenet", family="googlenet", input_size=224, min_input_size=32,
    groups=(("stem", ("conv1", "conv2", "conv3")), ("inception3", ("inception3a", "inception3b")),
            ("inception4", tuple(f"inception4{c}" for c in "abcde")),
            ("inception5", ("inception5a", "inception5b")), ("head", ("fc",))),
    head="fc", cam_layer="inception5b", pretrained="torchvision", mean=HALF, std=HALF,
    flexible_channels=False,
    description="GoogLeNet / Inception v1 (Szegedy et al. 2014), auxiliary classifiers off, 6.6M parameters")
def googlenet(num_classes: int, pretrained: bool, in_channels: int) -> nn.Module:
    """torchvision's GoogLeNet with no auxiliary heads and no input transform (normalise with 0.5/0.5)."""
    if pretrained:  # torchvision loads the aux heads with the weights, then drops them (aux_logits unset)
        return build_torchvision("googlenet", "googlenet", True, num_classes=num_classes, transform_input=False)
    return build_torchvision("googlenet", "googlenet", False, num_classes=num_classes, aux_logits=False,
                             transform_input=False, init_weights=True)
