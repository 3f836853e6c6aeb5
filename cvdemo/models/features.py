"""Reading activations out of a network: forward hooks, layer lookup and feature extraction.

    with capture(model.fc, "input") as seen:      # the hook is removed on exit, error or not
        model(x)
    feats, logits = extract_features(classifier, images)   # penultimate features and logits of an ImageSet

Every analysis that looks inside a model (evaluation, embeddings, explanations, filter views)
reads layers through these helpers, so hooks are always registered in a context manager.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import torch
from torch import nn

from cvdemo.data import ImageSet, make_loader, to_model_input
from cvdemo.device import resolve_device
from cvdemo.errors import ModelError
from cvdemo.models.registry import get_module, get_spec, last_module_path
from cvdemo.progress import phase

__all__ = ["FeatureSource", "capture", "last_linear", "head_path", "pooled", "layer_module", "extract_features"]


class FeatureSource(Protocol):
    """A model with the input conventions it expects (e.g. `cvdemo.predict.Classifier`)."""

    @property
    def model(self) -> nn.Module: ...
    @property
    def image_size(self) -> int: ...           # side of the square model input, pixels
    @property
    def mean(self) -> Sequence[float]: ...     # per-channel normalisation
    @property
    def std(self) -> Sequence[float]: ...
    @property
    def in_channels(self) -> int: ...          # 1 or 3


@contextmanager
def capture(module: nn.Module, what: str = "output") -> Iterator[list[torch.Tensor]]:
    """Collect `module`'s output (or its first positional input, what="input") on each forward call.

    Yields the list the tensors are appended to; the hook is removed on exit, even after an error.
    """
    seen: list[torch.Tensor] = []
    if what == "output":
        handle = module.register_forward_hook(lambda m, args, out: seen.append(out))
    elif what == "input":
        handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    else:
        raise ValueError(f"what must be 'output' or 'input', not {what!r}")
    try:
        yield seen
    finally:
        handle.remove()


def last_linear(model: nn.Module) -> str:
    """Dotted path of the last nn.Linear in module order: the classifier head of most networks."""
    return last_module_path(model, nn.Linear, f"{type(model).__name__} has no linear layer, so it has no "
                                              "penultimate features; name a layer with --layer")


def head_path(model: nn.Module, arch: str | None = None) -> str:
    """The classifier head's dotted path: the registry's for a known architecture, else the last Linear."""
    if arch:
        try:
            path = get_spec(arch).head
            if isinstance(model.get_submodule(path), nn.Linear):
                return path
        except (ModelError, AttributeError):
            pass
    return last_linear(model)


def pooled(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C) by global average pooling; anything else -> (B, features) flattened."""
    if isinstance(t, (tuple, list)):
        t = t[0]
    return t.mean(dim=(2, 3)) if t.dim() == 4 else t.flatten(1)


def layer_module(model: nn.Module, layer: str) -> nn.Module:
    """The submodule at a dotted path, or a one-sentence error listing a few valid names."""
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise ModelError(f"the model has no layer '{layer}'; top-level layers are {', '.join(names)} "
                         "(use dotted paths such as features.3 for deeper ones)") from None


def extract_features(classifier: FeatureSource, images: ImageSet, *, layer: str | None = None, arch: str | None = None,
                     batch_size: int = 128, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (N, D), logits float32 (N, K)) for every image of an ImageSet.

    `layer`: None or "penultimate" = input of the head; "logits" = the output; otherwise a dotted
    module path whose output is average-pooled if spatial.
    """
    model = classifier.model
    dev = resolve_device(device)
    model.to(dev).eval()
    if layer in (None, "penultimate"):
        module, what = get_module(model, head_path(model, arch)), "input"
    elif layer == "logits":
        module, what = model, "output"
    else:
        module, what = layer_module(model, layer), "output"
    feats, logits = [], []
    # evaluation, embeddings and reports all pass through here: one progress phase for them all
    with torch.inference_mode(), capture(module, what) as seen, \
            phase("predict", "running the model over the images", len(images), after=1.0) as meter:
        for x, _ in make_loader(images, batch_size=batch_size, shuffle=False):
            seen.clear()
            inp = to_model_input(x.to(dev), size=classifier.image_size, mean=classifier.mean, std=classifier.std,
                                 channels=classifier.in_channels)
            logits.append(model(inp).float().cpu())
            if not seen:
                raise ModelError(f"layer '{layer}' was not used in the forward pass; choose another layer")
            feats.append(pooled(seen[-1]).float().cpu())
            meter.add(len(x))
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(feats).numpy(), torch.cat(logits).numpy()
