"""Class activation maps: Grad-CAM, guided Grad-CAM and classic CAM, and the layer they read.

Same calling convention as `cvdemo.explain.gradients`: (session, xb (B, C, H, W), target) -> (B, H, W),
every map upsampled (bilinear) to the input's size.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cvdemo.errors import ModelError
from cvdemo.explain.gradients import guided, input_gradients
from cvdemo.explain.session import Session, default_batch
from cvdemo.models import module_paths
from cvdemo.models.features import last_linear, layer_module


def find_cam_layer(model: nn.Module) -> str:
    """Dotted path of the last nn.Conv2d in module order: a spatial feature map for any CNN."""
    names = module_paths(model, nn.Conv2d)
    if not names:
        raise ModelError(f"{type(model).__name__} has no Conv2d layer, so Grad-CAM has no feature map; "
                         "name one with layer=")
    return names[-1]


def _layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    return layer_module(model, layer if layer is not None else find_cam_layer(model))


def gradcam_maps(session: Session, xb: torch.Tensor, target: int | None, layer: str | nn.Module | None,
                 chunk: int) -> torch.Tensor:
    """ReLU(sum_k mean(d logit / d A_k) * A_k) at `layer`, upsampled (bilinear) to the input size.

    Only gradients with respect to A are needed, so the autograd graph starts at the layer: nothing
    upstream requires gradients (the parameters are frozen, the input is not tracked) and the hook
    hands the rest of the network a tracked copy of A. The copy, not A itself, meets any in-place
    operation downstream, so A keeps the layer's output values.
    """
    module = _layer(session.model, layer)
    seen: list[torch.Tensor] = []
    size = xb.shape[-2:]
    out = []

    def track(m: nn.Module, a: Any, o: Any) -> Any:
        acts = o[0] if isinstance(o, tuple) else o
        if not isinstance(acts, torch.Tensor):
            return None
        if not acts.requires_grad:
            acts = acts.detach().requires_grad_(True)
        seen.append(acts)
        flowing = acts.clone()
        return (flowing, *o[1:]) if isinstance(o, tuple) else flowing

    with session.hooks([module.register_forward_hook(track)]):
        for lo in range(0, len(xb), chunk):
            seen.clear()
            logits = session.model(xb[lo:lo + chunk].detach())
            score = logits[:, session.resolve(logits, target)].sum()
            if not seen:
                raise ModelError(f"layer '{layer}' is not used in the forward pass; choose another layer")
            acts = seen[-1]
            if acts.dim() != 4:
                raise ModelError(f"layer '{layer}' gives {tuple(acts.shape)} output, not a spatial feature map; "
                                 "choose a convolutional layer")
            (grads,) = torch.autograd.grad(score, acts)
            weights = grads.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * acts).sum(dim=1, keepdim=True))
            out.append(F.interpolate(cam.detach(), size=size, mode="bilinear", align_corners=False)[:, 0])
    return torch.cat(out)


def gradcam(session: Session, xb: torch.Tensor, target: int | None, layer: str | nn.Module | None = None,
            internal_batch_size: int | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) at `layer` (dotted path; default the last Conv2d)."""
    return gradcam_maps(session, xb, target, layer, internal_batch_size or default_batch(xb.device))


def guided_gradcam(session: Session, xb: torch.Tensor, target: int | None,
                   layer: str | nn.Module | None = None, internal_batch_size: int | None = None) -> torch.Tensor:
    """Guided backpropagation times Grad-CAM: fine detail inside the class's region."""
    internal_batch_size = internal_batch_size or default_batch(xb.device)
    cam = gradcam_maps(session, xb, target, layer, internal_batch_size)
    with guided(session):
        guided_maps = input_gradients(session, xb, session.target if target is None else target,
                                      internal_batch_size).abs().amax(dim=1)
    return guided_maps * cam


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
