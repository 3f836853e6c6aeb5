"""What the first layer learned, and what any layer makes of one image (report 000).

    name, weights = first_layer_filters(model)      # "conv1", float32 (64, 3, 7, 7)
    name, maps = feature_maps(model, x, "layer1")   # float32 (C, h, w) for one input (1, C, H, W)

Both are plain arrays; `filters_for_display` / `maps_for_display` scale them to [0, 1] the one way
that `cvdemo.plots.filters_plot`, `feature_maps_plot` and the app's Explain page all draw them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cvdemo.errors import ModelError
from cvdemo.models.features import capture, layer_module


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


def filters_for_display(weights: np.ndarray) -> np.ndarray:
    """First-layer filters float (O, I, kh, kw) -> float32 (O, 3, kh, kw) when the layer reads RGB, else
    (O, 1, kh, kw) averaged over its input channels; each filter scaled to its own [0, 1] range so its
    pattern shows."""
    w = np.asarray(weights, dtype=np.float32)
    w = w if w.shape[1] == 3 else w.mean(axis=1, keepdims=True)
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(w.max(axis=(1, 2, 3), keepdims=True) - lo, 1e-12)
    return (w - lo) / span


def maps_for_display(maps: np.ndarray, limit: int = 64) -> np.ndarray:
    """Activations float (C, h, w) -> float32 (min(C, limit), h, w) in [0, 1]: each map scaled to its own
    1st-99th percentile range (dark = low, bright = high) so every filter's response shows."""
    m = np.asarray(maps, dtype=np.float32)[:limit]
    lo = np.percentile(m, 1, axis=(1, 2), keepdims=True)
    hi = np.percentile(m, 99, axis=(1, 2), keepdims=True)
    return ((m - lo) / np.maximum(hi - lo, 1e-6)).clip(0, 1).astype(np.float32)
