"""The method table: which attribution methods exist, what options each accepts, and checking them.

A method is a function (session, xb (B, C, H, W), target, **options) -> maps (B, H, W); its options
are its keyword parameters, so the table and the signatures are the one source of truth.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cvdemo.errors import ConfigError
from cvdemo.explain import cam, gradients, occlusion, smoothgrad
from cvdemo.explain.session import Session, default_batch

Method = Callable[..., torch.Tensor]

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "occlusion", "guided_backprop", "gradcam",
           "guided_gradcam", "cam")
SIGNED = ("integrated_gradients", "occlusion", "cam")
# Methods whose first forward pass is on the unperturbed image: that pass also gives the class
# probabilities (and the predicted class when no target is named), so `explain` needs no pass of its own.
FIRST_PASS_CLEAN = ("saliency", "guided_backprop", "gradcam", "guided_gradcam", "occlusion", "cam")


def _smoothgrad(session: Session, xb: torch.Tensor, target: int | None, base: str = "saliency",
                n_samples: int = 16, stdev: float = 0.15, seed: int = 0, internal_batch_size: int | None = None,
                **base_options: Any) -> torch.Tensor:
    """The base method's map averaged over n_samples copies with Gaussian noise of std stdev x (max - min)."""
    internal_batch_size = internal_batch_size or default_batch(xb.device)
    if "internal_batch_size" in accepted_options(base):
        base_options["internal_batch_size"] = internal_batch_size
    return smoothgrad.smoothgrad(session, xb, target, _METHODS[base], n_samples, stdev, seed, internal_batch_size,
                                 base_options)


_METHODS: dict[str, Method] = {
    "saliency": gradients.saliency, "integrated_gradients": gradients.integrated_gradients,
    "smoothgrad": _smoothgrad, "occlusion": occlusion.occlusion, "guided_backprop": gradients.guided_backprop,
    "gradcam": cam.gradcam, "guided_gradcam": cam.guided_gradcam, "cam": cam.cam,
}


def method_function(name: str) -> Method:
    """The function that computes method `name`, or a ConfigError listing the methods."""
    if name not in _METHODS:
        raise ConfigError(f"unknown explanation method {name!r}: choose one of {', '.join(METHODS)}")
    return _METHODS[name]


def accepted_options(name: str) -> list[str]:
    """The options method `name` accepts (smoothgrad's own; its base method's come on top)."""
    params = inspect.signature(_METHODS[name]).parameters
    return [p for p in params if p not in ("session", "xb", "target", "base_options")]


def check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """A copy of `options` once every name is one `method` accepts and every number is in range."""
    accepted = accepted_options(method)
    if method == "smoothgrad":
        base = options.get("base", "saliency")
        if base == "smoothgrad" or base not in _METHODS:
            others = ", ".join(m for m in METHODS if m != "smoothgrad")
            raise ConfigError(f"smoothgrad's base must be one of {others}, not {base!r}")
        accepted = accepted + [o for o in accepted_options(base) if o not in accepted]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"{method} has no option {', '.join(unknown)}: it accepts {', '.join(accepted) or 'none'}")
    for key in ("n_steps", "internal_batch_size", "n_samples", "window", "stride"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ConfigError(f"{key} must be a whole number of at least 1, not {value!r}")
    stdev = options.get("stdev")
    if stdev is not None and not (isinstance(stdev, (int, float)) and stdev >= 0):
        raise ConfigError(f"stdev must be a number of at least 0, not {stdev!r}")
    return dict(options)
