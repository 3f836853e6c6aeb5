"""What the first layer learned, and what any layer makes of one image (report 000).

    name, weights = first_layer_filters(model)      # "conv1", float32 (64, 3, 7, 7)
    name, maps = feature_maps(model, x, "layer1")   # float32 (C, h, w) for one input (1, C, H, W)

Both are plain arrays; `cvdemo.plots.filters_plot` and `feature_maps_plot` draw them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cvdemo.errors import ModelError


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """(dotted path, module) of the first nn.Conv2d in module order: the layer that sees the pixels."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ModelError(f"{type(model).__name__} has no Conv2d layer, so it has no filters to show")


def first_layer_filters(model: nn.Module) -> tuple[str, np.ndarray]:
    """(layer path, weights float32 (out_channels, in_channels / groups, kh, kw)) of the first convolution."""
    name, conv = first_conv(model)
    return name, conv.weight.detach().float().cpu().numpy()


def feature_maps(model: nn.Module, image: torch.Tensor, layer: str | None = None) -> tuple[str, np.ndarray]:
    """(layer path, activations float32 (C, h, w)) of one model input (1, C, H, W) at `layer`
    (default: the first convolution). The hook is removed afterwards, error or not."""
    from cvdemo.embed import capture, layer_module

    name = layer or first_conv(model)[0]
    module = layer_module(model, name)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), capture(module, "output") as seen:
            param = next(model.parameters(), None)
            model(image.to(param.device if param is not None else image.device))
    finally:
        model.train(was_training)
    if not seen:
        raise ModelError(f"layer '{name}' is not used in the forward pass; choose another layer")
    out = seen[-1][0] if isinstance(seen[-1], (tuple, list)) else seen[-1]
    if out.dim() != 4:
        raise ModelError(f"layer '{name}' gives {tuple(out.shape)} output, not feature maps; choose a "
                         "convolutional layer")
    return name, out[0].float().cpu().numpy()
