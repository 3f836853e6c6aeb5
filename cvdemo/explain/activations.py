"""Activation modules in the form Captum's guided and DeepLift methods expect, swapped on a copy.

Captum's GuidedBackprop, Deconvolution and GuidedGradCam override gradients at `nn.ReLU` modules only,
its DeepLift applies its rescale rule at the module types of `SUPPORTED_NON_LINEAR` (ReLU, ELU, Tanh,
Sigmoid, ...) only, and its LRP accepts ReLU, Tanh and Dropout as activations. A network built with
ReLU6, Hardtanh, SiLU, Hardswish, GELU or Mish would get plain gradients at those layers (or, for LRP, an
error). `captum_ready` returns a deep copy of the model in which each such module is replaced by one
that computes exactly the same function but is seen by Captum as the activation it handles:

    ReLU6 / Hardtanh(0, t)   nn.ReLU followed by a clamp at t: guided methods rectify at the ReLU; the
                             clamp's gradient (1 below t, 0 above) is ReLU6's own. For DeepLift the
                             function is split as ReLU(x) - ReLU(x - t), two rescale rules.
    SiLU, Hardswish, GELU,   an nn.ReLU (guided, deconvolution) or nn.Tanh (DeepLift) instance whose forward
    Mish, ELU-likes          is the original activation: Captum's rule for that module type (rectified
                             gradients; the rescale multiplier (f(x) - f(x0)) / (x - x0)) then applies to
                             the real activation, which is what both papers define for any elementwise one.

Captum's DeepLift also keeps each activation module's input and output of its last call, so a module
the network calls more than once per forward pass (EfficientNet-Lite's `_swish`) would pair the wrong
ones: for DeepLift each such module becomes `_PerCall`, one copy per call, found by one counting pass.

The original model is never touched (the copy shares its weight tensors, not its module tree): the copy is made inside the explaining session (parameters already
frozen, eval mode) and dropped afterwards.
"""

from __future__ import annotations

import copy
import weakref
from typing import Literal

import torch
from torch import nn

Purpose = Literal["guided", "deeplift"]

# Elementwise activations Captum does not know, and the function each computes.
_ELEMENTWISE = (nn.SiLU, nn.Hardswish, nn.GELU, nn.Mish, nn.SELU, nn.CELU, nn.Hardsigmoid)


class _ClampAbove(nn.Module):
    """min(x, top): the upper half of ReLU6 / Hardtanh(0, top) once an nn.ReLU did the lower half."""

    def __init__(self, top: float):
        super().__init__()
        self.top = top

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(max=self.top)


class _ReLUDifference(nn.Module):
    """ReLU(x) - ReLU(x - top) = min(max(x, 0), top): ReLU6 as two ReLU modules, for DeepLift's rescale rule."""

    def __init__(self, top: float):
        super().__init__()
        self.low, self.high, self.top = nn.ReLU(), nn.ReLU(), top

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # `low` gets a tensor of its own: Captum's DeepLift replaces the whole gradient of the tensor a
        # nonlinearity reads with that module's rescaled one, which would drop the path through `high`.
        return self.low(x.clone()) - self.high(x - self.top)


def _disguised(original: nn.Module, as_type: type[nn.Module]) -> nn.Module:
    """An instance of `as_type` (a type Captum recognises exactly) whose forward is `original`'s."""
    module = as_type()
    module.forward = original.forward
    return module


def _replacement(module: nn.Module, purpose: Purpose) -> nn.Module | None:
    if isinstance(module, (nn.ReLU6, nn.Hardtanh)):
        low, top = (0.0, 6.0) if isinstance(module, nn.ReLU6) else (module.min_val, module.max_val)
        if low != 0.0:
            return None  # a symmetric Hardtanh is not a rectifier: leave it
        if purpose == "deeplift":
            return _ReLUDifference(top)
        return nn.Sequential(nn.ReLU(), _ClampAbove(top))
    if isinstance(module, _ELEMENTWISE):
        return _disguised(module, nn.ReLU if purpose == "guided" else nn.Tanh)
    return None


class _PerCall(nn.Module):
    """The k-th call of a forward pass goes to copy k: a module the network calls `calls` times, unshared."""

    def __init__(self, module: nn.Module, calls: int):
        super().__init__()
        self.copies = nn.ModuleList(copy.deepcopy(module) for _ in range(calls))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = self.copies[self.calls % len(self.copies)]
        self.calls += 1
        return module(x)


# Module types whose DeepLift rule reads the module's saved input and output.
_DEEPLIFT_STATEFUL = (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.MaxPool1d, nn.MaxPool2d,
                      nn.MaxPool3d, nn.Softmax)


def _unshare(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """`model` (a copy) with every DeepLift-stateful module that one forward pass of x calls more than once
    replaced by a `_PerCall`."""
    counts: dict[int, int] = {}
    stateful = [m for m in model.modules() if type(m) in _DEEPLIFT_STATEFUL]
    handles = [m.register_forward_pre_hook(lambda m, a: counts.__setitem__(id(m), counts.get(id(m), 0) + 1))
               for m in stateful]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if not any(n > 1 for n in counts.values()):
        return model
    wrapped: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):  # not named_children: it skips a module seen before
            if child is not None and counts.get(id(child), 0) > 1:
                if id(child) not in wrapped:
                    wrapped[id(child)] = _PerCall(child, counts[id(child)])
                parent._modules[name] = wrapped[id(child)]
    return model


def structural_copy(model: nn.Module) -> nn.Module:
    """A copy of the module tree that shares the parameter and buffer tensors: replacing modules in it
    leaves `model` as it was, and it costs no weight copy (one explanation on EfficientNet-Lite0 would
    otherwise copy 19 MB)."""
    shared: dict[int, object] = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo=shared)


def needs_swap(model: nn.Module) -> bool:
    """Whether `model` has an activation module Captum would not handle as one."""
    return any(isinstance(m, (nn.ReLU6, nn.Hardtanh, *_ELEMENTWISE)) for m in model.modules())


# The guided copy of each model, kept while the model lives: it shares the weight tensors, so training or
# loading weights in place shows through; `_tree` notices a module or tensor that was replaced.
_GUIDED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], nn.Module]] = weakref.WeakKeyDictionary()


def _tree(model: nn.Module) -> tuple[int, ...]:
    return tuple(id(o) for o in (*model.modules(), *model.parameters(), *model.buffers()))


def captum_ready(model: nn.Module, purpose: Purpose, x: torch.Tensor | None = None) -> nn.Module:
    """`model` itself when every activation is one Captum handles; otherwise a deep copy with each
    other activation replaced as the module docstring describes (same outputs, to float precision).
    For DeepLift, given an input x (1, C, H, W), modules called more than once per pass are unshared."""
    if not needs_swap(model):
        return model
    if purpose == "guided":
        tree = _tree(model)
        kept = _GUIDED.get(model)
        if kept is not None and kept[0] == tree:
            return kept[1]
    clone = _swapped(model, purpose)
    if purpose == "guided":
        _GUIDED[model] = (tree, clone)
        return clone
    return _unshare(clone, x) if x is not None else clone


def _swapped(model: nn.Module, purpose: Purpose) -> nn.Module:
    clone = structural_copy(model)
    swapped: dict[int, nn.Module | None] = {}  # a module shared by several parents gets one replacement
    for parent in list(clone.modules()):
        for name, child in list(parent._modules.items()):
            if child is not None:
                if id(child) not in swapped:
                    swapped[id(child)] = _replacement(child, purpose)
                new = swapped[id(child)]
                if new is not None:
                    parent._modules[name] = new
    return clone
