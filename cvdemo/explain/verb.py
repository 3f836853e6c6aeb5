"""The `explain` verb: one attribution map of one model input, and its result, `Explanation`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from cvdemo.explain.catalogue import NOISE_TYPES
from cvdemo.explain.drawing import unit_heat
from cvdemo.explain.methods import FIRST_PASS_CLEAN, accepted_options, check_options, method_function
from cvdemo.explain.session import check_image, explaining
from cvdemo.models import get_spec

if TYPE_CHECKING:
    from PIL import Image

    from cvdemo.predict import Classifier


@dataclass
class Explanation:
    """One attribution map for one image and one class."""

    method: str
    target: int                 # class index the map explains
    target_prob: float          # softmax probability of that class for the unperturbed image
    seconds: float              # wall time of the method, forward passes included
    map: np.ndarray             # float32 (H, W), input size; higher = more evidence for `target`
    options: dict[str, Any] = field(default_factory=dict)

    def normalized(self) -> np.ndarray:
        """The positive part scaled to [0, 1] (by its 99.5th percentile), for display."""
        return unit_heat(self.map)


def explain(model: nn.Module, image: torch.Tensor, method: str, target: int | None = None,
            **options: Any) -> Explanation:
    """Attribution map of `method` for `target` (default: the predicted class) on one model input.

    `image` is a float (1, C, H, W) (or (C, H, W)) tensor, already resized and normalised as the
    model expects. Options are the method's (see `cvdemo.explain`); an unknown one is an error.
    """
    x = check_image(image, model)
    fn = method_function(method)
    options = check_options(method, options)
    started = time.perf_counter()
    with explaining(model, target) as session:
        if method not in FIRST_PASS_CLEAN:  # the method's passes see perturbed images only
            with torch.no_grad():
                session.resolve(model(x), None)
        maps = fn(session, x, session.target, **options)
        probs, target = session.probs, session.target
    if probs is None or target is None:  # pragma: no cover - every method resolves on its first pass
        raise RuntimeError(f"{method} did not look at the unperturbed image")
    seconds = time.perf_counter() - started
    heat = maps[0].detach().float().cpu().numpy()
    return Explanation(method, target, float(probs[target]), seconds, heat.astype(np.float32), options)


def explain_image(classifier: Classifier, image: Image.Image, method: str, target: int | None = None, *,
                  arch: str | None = None, **options: Any) -> Explanation:
    """`explain` on a PIL image through a `cvdemo.predict.Classifier` (crop, resize, normalise as it does).

    With `arch` (the registry name), every method with a `layer` option (the CAM family, guided Grad-CAM,
    a noise method over one) uses the architecture's registered feature layer, and CAM its registered
    head, unless `layer=` / `head=` say otherwise.
    """
    if arch:
        spec = get_spec(arch)
        base = options.get("base") if method in NOISE_TYPES else None
        if "layer" in accepted_options(base or method) and "layer" not in options:
            options["layer"] = spec.cam_layer
        if method == "cam" and "head" not in options:
            options["head"] = spec.head
    return explain(classifier.model, classifier.to_input(image), method, target, **options)
