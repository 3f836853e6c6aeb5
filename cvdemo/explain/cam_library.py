"""The CAM family of pytorch-grad-cam (`grad-cam` on PyPI): Grad-CAM++, XGrad-CAM, Eigen-CAM, LayerCAM,
HiResCAM, Score-CAM, Ablation-CAM and FullGrad.

Same calling convention as `cvdemo.explain.captum_methods`: (session, xb (B, C, H, W), target) -> (B, H, W).
The target layer is ours (`layer=`, default `find_cam_layer`; `explain_image(arch=...)` passes the
registry's `cam_layer`), never the library's lookup. The library scales each map to [0, 1] and resizes
it to the input (OpenCV, headless build); its hooks are released in `finally`, even after an error.
Ablation-CAM swaps the target layer for an ablation layer while it runs, so it runs on a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cvdemo.errors import ModelError
from cvdemo.explain.activations import structural_copy
from cvdemo.explain.captum_methods import cam_layer
from cvdemo.explain.session import Session, default_batch

CLASSES = {"gradcam_pp": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "eigencam": "EigenCAM", "layercam": "LayerCAM",
           "hirescam": "HiResCAM", "scorecam": "ScoreCAM", "ablationcam": "AblationCAM", "fullgrad": "FullGrad"}
GRADIENT_FREE = ("eigencam", "scorecam", "ablationcam")  # no backward pass: the input needs no gradient


class SessionTarget:
    """The library's target callable: the target's logit of one output row (K,). The first call sees the
    unperturbed image's row and resolves the target through the session."""

    def __init__(self, session: Session, target: int | None):
        self.session, self.target = session, target

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        row = output if output.dim() == 1 else output[0]
        return row[self.session.resolve(row.unsqueeze(0), self.target)]


def library_cam(name: str, session: Session, xb: torch.Tensor, target: int | None,
                layer: str | nn.Module | None = None, internal_batch_size: int | None = None) -> torch.Tensor:
    """pytorch-grad-cam's `CLASSES[name]` at `layer`, maps (B, H, W) in [0, 1]."""
    import pytorch_grad_cam

    model = structural_copy(session.model) if name == "ablationcam" else session.model
    cls = getattr(pytorch_grad_cam, CLASSES[name])
    kwargs: dict[str, Any] = {}
    if name == "ablationcam":
        from pytorch_grad_cam.ablation_layer import AblationLayer

        kwargs = {"ablation_layer": AblationLayer(), "batch_size": internal_batch_size or default_batch(xb.device)}
    layers = [] if name == "fullgrad" else [cam_layer(session, model, layer)]  # FullGrad reads every bias layer
    cam = cls(model, layers, **kwargs)
    try:
        if name == "scorecam":
            cam.batch_size = internal_batch_size or default_batch(xb.device)
        x = xb.detach().clone()
        if name not in GRADIENT_FREE:
            x.requires_grad_(True)  # parameters are frozen: the input is what makes the layer's output need a gradient
        try:
            maps = cam(x, [SessionTarget(session, target) for _ in range(len(x))])
        except TypeError as e:
            if name != "ablationcam":
                raise
            # The library swaps the layer for one that takes a single tensor; a block the network calls with
            # more arguments (EfficientNet-Lite's blocks take keywords) cannot be ablated that way.
            raise ModelError(f"Ablation-CAM cannot ablate {layer if isinstance(layer, str) else 'this layer'}: the "
                             f"network calls it with more than one input ({str(e).splitlines()[0][:80]}); pick a "
                             f"convolution layer, or use Grad-CAM++ or Score-CAM") from None
    finally:
        cam.activations_and_grads.release()
    return torch.as_tensor(maps, dtype=torch.float32, device=xb.device)


def cam_method(name: str) -> Callable[..., torch.Tensor]:
    """The method function of library CAM `name` (FullGrad takes no layer, the batched ones a batch size)."""
    if name == "fullgrad":
        def fullgrad(session: Session, xb: torch.Tensor, target: int | None) -> torch.Tensor:
            return library_cam(name, session, xb, target)
        return fullgrad
    if name in ("scorecam", "ablationcam"):
        def batched(session: Session, xb: torch.Tensor, target: int | None, layer: str | nn.Module | None = None,
                    internal_batch_size: int | None = None) -> torch.Tensor:
            return library_cam(name, session, xb, target, layer, internal_batch_size)
        return batched

    def plain(session: Session, xb: torch.Tensor, target: int | None,
              layer: str | nn.Module | None = None) -> torch.Tensor:
        return library_cam(name, session, xb, target, layer)
    return plain
