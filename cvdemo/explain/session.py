"""What every attribution method runs inside: the explaining session, the model input and its defaults.

`explaining(model)` puts the model in eval mode with its parameters frozen and removes every hook it
was given on exit; `Session.resolve` records the unperturbed image's probabilities and the class to
explain from the first forward pass that sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from cvdemo.errors import ConfigError

# Images per forward pass when `internal_batch_size` is not given: (gradient methods, occlusion). A GPU
# wants big batches. On a CPU they cost more than they save: once a batch's activations outgrow glibc's
# mmap threshold (32 MiB), every pass maps fresh pages and the kernel faults them in. Measured on 2 cores,
# EfficientNet-Lite0 at 224x224: occlusion 7.2 s in batches of 32, 3.8 s one by one, 2.5 s in batches
# of 4; integrated gradients (32 steps) 1.6 s in batches of 16, 1.15 s in batches of 8.
BATCH_DEFAULTS = {"cpu": (8, 4), "gpu": (16, 32)}


def default_batch(device: torch.device, occlusion: bool = False) -> int:
    """`internal_batch_size` when none is given, for a model on `device`."""
    gradients, occluded = BATCH_DEFAULTS["cpu" if device.type == "cpu" else "gpu"]
    return occluded if occlusion else gradients


class Session:
    """The model plus the hooks registered while one explanation runs (all removed at the end), and the
    unperturbed image's probabilities once a forward pass has seen them."""

    def __init__(self, model: nn.Module, target: int | None = None):
        self.model = model
        self.handles: list[RemovableHandle] = []
        self.target = target                   # None until the unperturbed image's logits name the class
        self.probs: torch.Tensor | None = None  # float (K,) softmax of the unperturbed image

    def resolve(self, logits: torch.Tensor, target: int | None) -> int:
        """The class to explain. The first call sees the logits (B, K) of a batch whose row 0 is the
        unperturbed image: it records their softmax and checks (or picks) the target."""
        if self.probs is None:
            self.probs = torch.softmax(logits[0].detach().float(), dim=0)
            wanted = self.target if target is None else target
            self.target = int(self.probs.argmax()) if wanted is None else check_target(wanted, self.probs.numel())
        if target is not None:
            return target
        assert self.target is not None  # set on the first call above
        return self.target

    @contextmanager
    def hooks(self, handles: list[RemovableHandle]) -> Iterator[None]:
        self.handles.extend(handles)
        try:
            yield
        finally:
            for h in handles:
                h.remove()


@contextmanager
def explaining(model: nn.Module, target: int | None = None) -> Iterator[Session]:
    """Eval mode, parameters frozen; on exit every hook removed and mode and requires_grad restored."""
    modes = [(m, m.training) for m in model.modules() if m.training]  # walked once; most calls find none
    trained = [p for p in model.parameters() if p.requires_grad]
    session = Session(model, target)
    try:
        for m, _ in modes:
            m.training = False
        for p in trained:
            p.requires_grad_(False)
        yield session
    finally:
        for h in session.handles:
            h.remove()
        for p in trained:
            p.requires_grad_(True)
        for m, mode in modes:
            m.training = mode


def check_target(target: object, num_classes: int) -> int:
    """`target` as a class index in 0..num_classes-1, or a ConfigError that says what is allowed."""
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) < num_classes:
        raise ConfigError(f"target must be a class index from 0 to {num_classes - 1}, not {target!r}")
    return int(target)


def check_image(image: object, model: nn.Module) -> torch.Tensor:
    """A float model input (1, C, H, W) or (C, H, W) as float32 (1, C, H, W) on the model's device."""
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise ConfigError("the image must be a float tensor of model input (1, C, H, W); "
                          "use explain_image for a PIL image")
    x = image.unsqueeze(0) if image.dim() == 3 else image
    if x.dim() != 4 or x.shape[0] != 1:
        raise ConfigError(f"the image must have shape (1, C, H, W), not {tuple(image.shape)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    return x.detach().to(device=device, dtype=torch.float32)

