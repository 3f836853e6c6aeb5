"""The method table: the function behind each catalogue name, the options each accepts, checking them.

A method is a function (session, xb (B, C, H, W), target, **options) -> maps (B, H, W); its options
are its keyword parameters, so the table and the signatures are the one source of truth. Which methods
exist, and what each shows, is `cvdemo.explain.catalogue`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cvdemo.errors import ConfigError
from cvdemo.explain import cam
from cvdemo.explain.cam_library import CLASSES, cam_method
from cvdemo.explain.captum_methods import PLANS, captum_method, noise_tunnel
from cvdemo.explain.catalogue import METHODS, NOISE_TYPES, SIGNED
from cvdemo.explain.session import Session

Method = Callable[..., torch.Tensor]

# Methods whose first forward pass is on the unperturbed image: that pass also gives the class
# probabilities (and the predicted class when no target is named), so `explain` needs no pass of its own.
# The others start on interpolated, noisy or baseline images (LRP on re-ruled layers; Eigen-CAM never asks).
FIRST_PASS_CLEAN = tuple(m for m in METHODS if m not in (
    "integrated_gradients", "gradient_shap", "shapley", "lrp", "eigencam", *NOISE_TYPES))
BASELINE_WORDS = ("black", "blurred", "noise")


def _noise_method(nt_type: str) -> Method:
    def method(session: Session, xb: torch.Tensor, target: int | None, base: str = "saliency",
               n_samples: int = 16, stdev: float = 0.15, seed: int = 0, internal_batch_size: int | None = None,
               **base_options: Any) -> torch.Tensor:
        return noise_tunnel(session, xb, target, NOISE_TYPES[nt_type], base, n_samples, stdev, seed,
                            internal_batch_size, **base_options)
    method.__doc__ = noise_tunnel.__doc__
    return method


_METHODS: dict[str, Method] = {
    **{name: captum_method(name) for name in PLANS},
    **{name: _noise_method(name) for name in NOISE_TYPES},
    **{name: cam_method(name) for name in CLASSES},
    "cam": cam.cam,
}
assert set(_METHODS) == set(METHODS), "the catalogue and the method table disagree"
NOISE_BASES = tuple(m for m in METHODS if m in PLANS)


def method_function(name: str) -> Method:
    """The function that computes method `name`, or a ConfigError listing the methods."""
    if name not in _METHODS:
        raise ConfigError(f"unknown explanation method {name!r}: choose one of {', '.join(METHODS)}")
    return _METHODS[name]


def accepted_options(name: str) -> list[str]:
    """The options method `name` accepts (a noise method's own; its base method's come on top)."""
    params = inspect.signature(method_function(name)).parameters
    return [p for p in params if p not in ("session", "xb", "target", "base_options")]


def check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """A copy of `options` once every name is one `method` accepts and every number is in range."""
    accepted = accepted_options(method)
    if method in NOISE_TYPES:
        base = options.get("base", "saliency")
        if base not in NOISE_BASES:
            raise ConfigError(f"{method}'s base must be one of {', '.join(NOISE_BASES)}, not {base!r}")
        accepted = accepted + [o for o in accepted_options(base) if o not in accepted and o != "seed"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"{method} has no option {', '.join(unknown)}: it accepts {', '.join(accepted) or 'none'}")
    for key in ("n_steps", "internal_batch_size", "n_samples", "window", "stride", "n_segments", "n_baselines"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ConfigError(f"{key} must be a whole number of at least 1, not {value!r}")
    stdev = options.get("stdev")
    if stdev is not None and not (isinstance(stdev, (int, float)) and stdev >= 0):
        raise ConfigError(f"stdev must be a number of at least 0, not {stdev!r}")
    baseline = options.get("baseline")
    if baseline is not None and not isinstance(baseline, torch.Tensor) and not (
            isinstance(baseline, (int, float)) and not isinstance(baseline, bool)) and baseline not in BASELINE_WORDS:
        raise ConfigError(f"baseline must be a number or one of {', '.join(BASELINE_WORDS)}, not {baseline!r}")
    return dict(options)


__all__ = ["FIRST_PASS_CLEAN", "METHODS", "SIGNED", "accepted_options", "check_options", "method_function"]
