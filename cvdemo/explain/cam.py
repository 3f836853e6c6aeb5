"""Classic CAM (Zhou et al. 2016), ours: neither Captum nor pytorch-grad-cam has it (both start from
gradients or perturbations; CAM reads the linear head's weights over a globally pooled feature map).

Same calling convention as `cvdemo.explain.captum_methods`: (session, xb (B, C, H, W), target) -> (B, H, W),
upsampled (bilinear) to the input's size. Grad-CAM and the rest of the family live in `captum_methods`
(LayerGradCam, GuidedGradCam) and `cam_library` (pytorch-grad-cam).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cvdemo.errors import ModelError
from cvdemo.explain.captum_methods import find_cam_layer
from cvdemo.explain.session import Session
from cvdemo.models.features import last_linear, layer_module

__all__ = ["cam", "find_cam_layer"]


def cam(session: Session, xb: torch.Tensor, target: int | None, head: str | None = None) -> torch.Tensor:
    """Classic CAM (Zhou et al. 2016): sum_k w[target, k] * F_k, where F is the feature map whose global
    average is the input of the linear head. The structure is checked on this very forward pass:
    a network with layers between the pooling and the head gets a clear error."""
    model = session.model
    head_module = layer_module(model, head or last_linear(model))
    if not isinstance(head_module, nn.Linear):
        raise ModelError(f"CAM needs a linear head, but '{head}' is {type(head_module).__name__}")
    width = head_module.in_features
    inputs: list[torch.Tensor] = []
    maps: list[torch.Tensor] = []

    def grab(m: nn.Module, a: Any, o: Any) -> None:
        # spatial maps only: the pooled (B, C, 1, 1) output would match trivially
        if isinstance(o, torch.Tensor) and o.dim() == 4 and o.shape[1] == width and o.shape[2] * o.shape[3] > 1:
            maps.append(o)

    handles = [head_module.register_forward_pre_hook(lambda m, a: inputs.append(a[0]))]
    handles += [m.register_forward_hook(grab) for m in model.modules() if m is not model]
    with session.hooks(handles), torch.no_grad():
        target = session.resolve(model(xb), target)
    pooled = inputs[-1].flatten(1) if inputs else None
    feature = None
    if pooled is not None:
        for fmap in reversed(maps):
            if fmap.shape[0] == pooled.shape[0] and torch.allclose(
                    fmap.mean(dim=(2, 3)), pooled, rtol=1e-4, atol=1e-5 * (1.0 + float(pooled.abs().max()))):
                feature = fmap
                break
    if feature is None:
        raise ModelError(f"classic CAM needs a network whose linear head reads globally averaged feature maps "
                         f"(ResNet, EfficientNet, MobileNetV2, GoogLeNet); {type(model).__name__} has other "
                         "layers in between, so use gradcam")
    weight = head_module.weight[target].to(feature.dtype)
    heat = torch.einsum("bkhw,k->bhw", feature, weight).unsqueeze(1)
    return F.interpolate(heat, size=xb.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
