"""Why did the network say that? One verb over eight attribution methods, plus their checks.

    x = classifier.to_input(pil_image)                  # float (1, C, H, W) model input
    exp = explain(classifier.model, x, "gradcam")       # target defaults to the predicted class
    exp.map                                             # float32 (H, W): higher = more evidence for exp.target
    overlay(model_view(classifier, pil_image), exp.map) # PIL RGB image, heat map over the photo
    faithfulness(classifier.model, x, exp)              # deletion / insertion AUC against a random order

Methods (`METHODS`) and their options:

    saliency              |d logit / d pixel|, maximum over channels (Simonyan et al. 2014)
    integrated_gradients  n_steps=32 (Gauss-Legendre), baseline=0.0, internal_batch_size
    smoothgrad            base="saliency", n_samples=16, stdev=0.15 (of the input range), seed=0,
                          plus the base method's options: the base map averaged over noisy copies
    occlusion             window (pixels, default side/7), stride (window/2), baseline=0.0,
                          internal_batch_size occluded copies per forward pass
    guided_backprop       gradients with only positive gradients flowing back through each activation
    gradcam               layer (dotted path; default the last Conv2d), internal_batch_size
    guided_gradcam        guided backprop x Grad-CAM, same options as gradcam
    cam                   classic CAM for global-average-pool + linear-head networks; head (dotted path)

`internal_batch_size` (images per forward pass) defaults to `default_batch`: 16, and 32 occluded
copies, on a GPU; 8, and 4, on a CPU, where bigger batches of large images are slower, not faster.

Every map has the input's height and width. Signed methods (integrated gradients, occlusion,
CAM) keep their sign; overlays show the positive part. While a method runs the model is in
eval mode with its parameters' requires_grad off (no parameter gradients are computed); the
hooks it registers are removed and the previous state restored on exit, even after an error.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cvdemo.errors import ConfigError, ModelError
from cvdemo.models import get_spec, module_paths
from cvdemo.models.features import last_linear, layer_module

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "occlusion", "guided_backprop", "gradcam",
           "guided_gradcam", "cam")
SIGNED = ("integrated_gradients", "occlusion", "cam")
# Activations that guided backpropagation rectifies gradients through (gates such as the sigmoid of
# squeeze-excitation are left alone).
GUIDED_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.SiLU, nn.GELU, nn.Mish,
                      nn.Hardswish, nn.Tanh)


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


# Methods whose first forward pass is on the unperturbed image: that pass also gives the class
# probabilities (and the predicted class when no target is named), so `explain` needs no pass of its own.
FIRST_PASS_CLEAN = ("saliency", "guided_backprop", "gradcam", "guided_gradcam", "occlusion", "cam")


class _Session:
    """The model plus the hooks registered while one explanation runs (all removed at the end), and the
    unperturbed image's probabilities once a forward pass has seen them."""

    def __init__(self, model: nn.Module, target: int | None = None):
        self.model = model
        self.handles: list[Any] = []
        self.target = target                   # None until the unperturbed image's logits name the class
        self.probs: torch.Tensor | None = None  # float (K,) softmax of the unperturbed image

    def resolve(self, logits: torch.Tensor, target: int | None) -> int:
        """The class to explain. The first call sees the logits (B, K) of a batch whose row 0 is the
        unperturbed image: it records their softmax and checks (or picks) the target."""
        if self.probs is None:
            self.probs = torch.softmax(logits[0].detach().float(), dim=0)
            wanted = self.target if target is None else target
            self.target = int(self.probs.argmax()) if wanted is None else check_target(wanted, self.probs.numel())
        return self.target if target is None else target

    @contextmanager
    def hooks(self, handles: list[Any]) -> Iterator[None]:
        self.handles.extend(handles)
        try:
            yield
        finally:
            for h in handles:
                h.remove()


@contextmanager
def explaining(model: nn.Module, target: int | None = None) -> Iterator[_Session]:
    """Eval mode, parameters frozen; on exit every hook removed and mode and requires_grad restored."""
    modes = [(m, m.training) for m in model.modules() if m.training]  # walked once; most calls find none
    trained = [p for p in model.parameters() if p.requires_grad]
    session = _Session(model, target)
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


def explain(model: nn.Module, image: torch.Tensor, method: str, target: int | None = None,
            **options: Any) -> Explanation:
    """Attribution map of `method` for `target` (default: the predicted class) on one model input.

    `image` is a float (1, C, H, W) (or (C, H, W)) tensor, already resized and normalised as the
    model expects. Options are the method's (see the module docstring); an unknown one is an error.
    """
    x = _check_image(image, model)
    fn = _method(method)
    options = _check_options(method, options)
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


def explain_image(classifier: Any, image: Any, method: str, target: int | None = None, *,
                  arch: str | None = None, **options: Any) -> Explanation:
    """`explain` on a PIL image through a `cvdemo.predict.Classifier` (crop, resize, normalise as it does).

    With `arch` (the registry name), Grad-CAM uses the architecture's registered feature layer
    and CAM its registered head unless `layer=` / `head=` say otherwise.
    """
    if arch:
        spec = get_spec(arch)
        if method in ("gradcam", "guided_gradcam") and "layer" not in options:
            options["layer"] = spec.cam_layer
        if method == "smoothgrad" and options.get("base") in ("gradcam", "guided_gradcam") and "layer" not in options:
            options["layer"] = spec.cam_layer
        if method == "cam" and "head" not in options:
            options["head"] = spec.head
    return explain(classifier.model, classifier.to_input(image), method, target, **options)


def check_target(target: Any, num_classes: int) -> int:
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) < num_classes:
        raise ConfigError(f"target must be a class index from 0 to {num_classes - 1}, not {target!r}")
    return int(target)


def _check_image(image: Any, model: nn.Module) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise ConfigError("the image must be a float tensor of model input (1, C, H, W); "
                          "use explain_image for a PIL image")
    x = image.unsqueeze(0) if image.dim() == 3 else image
    if x.dim() != 4 or x.shape[0] != 1:
        raise ConfigError(f"the image must have shape (1, C, H, W), not {tuple(image.shape)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    return x.detach().to(device=device, dtype=torch.float32)


def _method(name: str) -> Callable[..., torch.Tensor]:
    if name not in _METHODS:
        raise ConfigError(f"unknown explanation method {name!r}: choose one of {', '.join(METHODS)}")
    return _METHODS[name]


def _accepted(name: str) -> list[str]:
    params = inspect.signature(_METHODS[name]).parameters
    return [p for p in params if p not in ("session", "xb", "target", "base_options")]


def _check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    accepted = _accepted(method)
    if method == "smoothgrad":
        base = options.get("base", "saliency")
        if base == "smoothgrad" or base not in _METHODS:
            others = ", ".join(m for m in METHODS if m != "smoothgrad")
            raise ConfigError(f"smoothgrad's base must be one of {others}, not {base!r}")
        accepted = accepted + [o for o in _accepted(base) if o not in accepted]
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


# -- layers -------------------------------------------------------------------------------------------

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


# -- gradients ----------------------------------------------------------------------------------------

def _input_gradients(session: _Session, xb: torch.Tensor, target: int | None, chunk: int) -> torch.Tensor:
    """d logit[target] / d input for each row of xb (B, C, H, W), `chunk` rows per backward pass."""
    grads = []
    for lo in range(0, len(xb), chunk):
        xi = xb[lo:lo + chunk].detach().clone().requires_grad_(True)
        logits = session.model(xi)
        score = logits[:, session.resolve(logits, target)].sum()
        (g,) = torch.autograd.grad(score, xi)
        grads.append(g)
    return torch.cat(grads)


def _saliency(session: _Session, xb: torch.Tensor, target: int | None,
              internal_batch_size: int | None = None) -> torch.Tensor:
    return _input_gradients(session, xb, target, internal_batch_size or default_batch(xb.device)).abs().amax(dim=1)


def _baseline(baseline: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(x.device, x.dtype)
        return b.reshape(x.shape) if b.numel() == x.numel() else b.expand_as(x)
    return torch.full_like(x, float(baseline))


def _integrated_gradients(session: _Session, xb: torch.Tensor, target: int, n_steps: int = 32,
                          baseline: float | torch.Tensor = 0.0, internal_batch_size: int | None = None) -> torch.Tensor:
    """(x - baseline) * the path integral of the gradient, by n_steps-point Gauss-Legendre quadrature;
    summed over channels. At most `internal_batch_size` interpolated images per backward pass."""
    internal_batch_size = internal_batch_size or default_batch(xb.device)
    nodes, weights = np.polynomial.legendre.leggauss(int(n_steps))
    alphas = torch.tensor((nodes + 1) / 2, dtype=xb.dtype, device=xb.device)
    step = torch.tensor(weights / 2, dtype=xb.dtype, device=xb.device)
    maps = []
    for x in xb:
        base = _baseline(baseline, x)
        diff = x - base
        total = torch.zeros_like(x)
        for lo in range(0, len(alphas), internal_batch_size):
            a = alphas[lo:lo + internal_batch_size].view(-1, 1, 1, 1)
            g = _input_gradients(session, base + a * diff, target, internal_batch_size)
            total += (g * step[lo:lo + internal_batch_size].view(-1, 1, 1, 1)).sum(dim=0)
        maps.append((diff * total).sum(dim=0))
    return torch.stack(maps)


def _smoothgrad(session: _Session, xb: torch.Tensor, target: int, base: str = "saliency", n_samples: int = 16,
                stdev: float = 0.15, seed: int = 0, internal_batch_size: int | None = None,
                **base_options: Any) -> torch.Tensor:
    """The base method's map averaged over n_samples copies with Gaussian noise of std stdev x (max - min)."""
    internal_batch_size = internal_batch_size or default_batch(xb.device)
    fn = _METHODS[base]
    if "internal_batch_size" in _accepted(base):
        base_options["internal_batch_size"] = internal_batch_size
    gen = torch.Generator().manual_seed(int(seed))
    maps = []
    for x in xb:
        sigma = float(stdev) * float(x.max() - x.min())
        acc = torch.zeros(x.shape[-2:], dtype=x.dtype, device=x.device)
        for lo in range(0, n_samples, internal_batch_size):
            b = min(internal_batch_size, n_samples - lo)
            noise = torch.randn((b, *x.shape), generator=gen).to(x.device) * sigma
            acc += fn(session, x.unsqueeze(0) + noise, target, **base_options).sum(dim=0)
        maps.append(acc / n_samples)
    return torch.stack(maps)


@contextmanager
def _guided(session: _Session) -> Iterator[None]:
    """Only positive gradients pass back through each activation module (guided backpropagation)."""
    modules = [m for m in session.model.modules() if isinstance(m, GUIDED_ACTIVATIONS)]
    if not modules:
        raise ModelError(f"{type(session.model).__name__} has no activation modules (ReLU, Tanh, ...) to guide "
                         "gradients through; use saliency")

    def rectify(module: nn.Module, args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda g: g.clamp(min=0))

    with session.hooks([m.register_forward_hook(rectify) for m in modules]):
        yield


def _guided_backprop(session: _Session, xb: torch.Tensor, target: int | None,
                     internal_batch_size: int | None = None) -> torch.Tensor:
    with _guided(session):
        return _input_gradients(session, xb, target,
                                internal_batch_size or default_batch(xb.device)).abs().amax(dim=1)


def _gradcam_maps(session: _Session, xb: torch.Tensor, target: int | None, layer: str | nn.Module | None,
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


def _gradcam(session: _Session, xb: torch.Tensor, target: int | None, layer: str | nn.Module | None = None,
             internal_batch_size: int | None = None) -> torch.Tensor:
    return _gradcam_maps(session, xb, target, layer, internal_batch_size or default_batch(xb.device))


def _guided_gradcam(session: _Session, xb: torch.Tensor, target: int | None,
                    layer: str | nn.Module | None = None, internal_batch_size: int | None = None) -> torch.Tensor:
    internal_batch_size = internal_batch_size or default_batch(xb.device)
    cam = _gradcam_maps(session, xb, target, layer, internal_batch_size)
    with _guided(session):
        guided = _input_gradients(session, xb, session.target if target is None else target,
                                  internal_batch_size).abs().amax(dim=1)
    return guided * cam


# -- perturbation -------------------------------------------------------------------------------------

def _starts(n: int, window: int, stride: int) -> list[int]:
    """Window positions covering 0..n-1: every `stride`, plus one flush with the end."""
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


def _occlusion(session: _Session, xb: torch.Tensor, target: int | None, window: int | None = None,
               stride: int | None = None, baseline: float | torch.Tensor = 0.0,
               internal_batch_size: int | None = None) -> torch.Tensor:
    """Drop in the target's probability when a window x window square (all channels) is set to the
    baseline, averaged over the windows covering each pixel; `internal_batch_size` occluded copies
    go through the network per forward pass."""
    internal_batch_size = internal_batch_size or default_batch(xb.device, occlusion=True)
    h, w = xb.shape[-2:]
    win = min(int(window or max(1, min(h, w) // 7)), h, w)
    step = int(stride or max(1, win // 2))
    boxes = [(y, x) for y in _starts(h, win, step) for x in _starts(w, win, step)]
    maps = []
    for x in xb:
        base = _baseline(baseline, x)
        with torch.no_grad():
            logits = session.model(x.unsqueeze(0))
            target = session.resolve(logits, target)
            p0 = torch.softmax(logits.float(), dim=1)[0, target]
            acc = torch.zeros((h, w), dtype=torch.float32, device=x.device)
            count = torch.zeros((h, w), dtype=torch.float32, device=x.device)
            for lo in range(0, len(boxes), internal_batch_size):
                chunk = boxes[lo:lo + internal_batch_size]
                batch = x.unsqueeze(0).repeat(len(chunk), 1, 1, 1)
                for j, (y0, x0) in enumerate(chunk):
                    batch[j, :, y0:y0 + win, x0:x0 + win] = base[:, y0:y0 + win, x0:x0 + win]
                p = torch.softmax(session.model(batch).float(), dim=1)[:, target]
                for j, (y0, x0) in enumerate(chunk):
                    acc[y0:y0 + win, x0:x0 + win] += p0 - p[j]
                    count[y0:y0 + win, x0:x0 + win] += 1
        maps.append(acc / count.clamp(min=1))
    return torch.stack(maps)


# -- CAM ----------------------------------------------------------------------------------------------

def _cam(session: _Session, xb: torch.Tensor, target: int | None, head: str | None = None) -> torch.Tensor:
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
    cam = torch.einsum("bkhw,k->bhw", feature, weight).unsqueeze(1)
    return F.interpolate(cam, size=xb.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


_METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "saliency": _saliency, "integrated_gradients": _integrated_gradients, "smoothgrad": _smoothgrad,
    "occlusion": _occlusion, "guided_backprop": _guided_backprop, "gradcam": _gradcam,
    "guided_gradcam": _guided_gradcam, "cam": _cam,
}


# -- faithfulness ---------------------------------------------------------------------------------------

@dataclass
class Faithfulness:
    """Deletion and insertion scores of one map (Petsiuk et al. 2018), each against a random pixel order.

    Deletion: the target's probability as the most-attributed pixels are set to the baseline first;
    a lower area under that curve is better. Insertion: the probability as they are copied into a
    blurred image first; higher is better. AUCs are over the fraction of pixels in [0, 1]; the
    `_random_` figures are the mean over random maps as smooth as the explained one.
    """

    deletion_auc: float
    deletion_random_auc: float
    insertion_auc: float | None
    insertion_random_auc: float | None
    deletion_curve: list[float]
    insertion_curve: list[float] | None
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "verdict": self.verdict()}

    def verdict(self) -> str:
        """"better", "mixed" or "worse" than random maps: deletion wins when lower, insertion when higher.

        Deletion alone misjudges a photo the object fills (greying the hottest region still leaves object
        everywhere else, while random blobs spoil it all over), so both tests are asked when present.
        """
        wins = [self.deletion_auc < self.deletion_random_auc]
        if self.insertion_auc is not None and self.insertion_random_auc is not None:
            wins.append(self.insertion_auc > self.insertion_random_auc)
        return "better" if all(wins) else "worse" if not any(wins) else "mixed"


def pixel_order(heat: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat pixel indices from most to least attributed (ties in random order, fixed by `seed`)."""
    flat = np.asarray(heat, dtype=np.float64).reshape(-1)
    keys = np.random.default_rng(seed).random(flat.size)
    return np.lexsort((keys, -flat))


def _blur(x: torch.Tensor) -> torch.Tensor:
    """A strong blur of (1, C, H, W): two box filters of side ~H/10 (close to a Gaussian)."""
    k = max(3, (min(x.shape[-2:]) // 10) | 1)
    for _ in range(2):
        x = F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)
    return x


def perturbation_curve(model: nn.Module, image: torch.Tensor, order: np.ndarray, target: int, *,
                       mode: str = "deletion", steps: int = 20, baseline: float = 0.0,
                       internal_batch_size: int = 16) -> np.ndarray:
    """Probability of `target` (float (steps + 1,)) as pixels are removed ("deletion": set to `baseline`)
    or inserted ("insertion": copied into a blurred image) in `order`, in `steps` equal amounts."""
    x = _check_image(image, model)
    h, w = x.shape[-2:]
    counts = np.round(np.linspace(0, h * w, steps + 1)).astype(np.int64)
    rank = torch.empty(h * w, dtype=torch.int64)
    rank[torch.as_tensor(order.copy())] = torch.arange(h * w)
    rank = rank.view(1, 1, h, w).to(x.device)
    if mode == "deletion":
        start, end = x, torch.full_like(x, float(baseline))
    elif mode == "insertion":
        start, end = _blur(x), x
    else:
        raise ConfigError(f"mode must be 'deletion' or 'insertion', not {mode!r}")
    probs = []
    with explaining(model), torch.no_grad():
        for lo in range(0, len(counts), internal_batch_size):
            c = torch.as_tensor(counts[lo:lo + internal_batch_size], device=x.device).view(-1, 1, 1, 1)
            mask = (rank < c).to(x.dtype)
            batch = start * (1 - mask) + end * mask
            probs.append(torch.softmax(model(batch).float(), dim=1)[:, target].cpu())
    return torch.cat(probs).numpy()


def auc(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at equal steps over [0, 1]."""
    c = np.asarray(curve, dtype=np.float64)
    return float(((c[1:] + c[:-1]) / 2).sum() / (len(c) - 1))


def random_like(heat: np.ndarray, seed: int = 0) -> np.ndarray:
    """A random map as smooth as `heat`: same Fourier amplitudes, random phases (a surrogate map).

    The fair random baseline for deletion: a smooth map (Grad-CAM) is compared with random smooth
    blobs, a speckled one (saliency) with random speckle. Random single pixels would be unfair to
    smooth maps, because scattered grey pixels fool a CNN far faster than any region removed whole.
    """
    h = np.asarray(heat, dtype=np.float64)
    spectrum = np.fft.rfft2(h - h.mean())
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(spectrum.shape))
    phase[0, 0] = 1.0
    return np.fft.irfft2(np.abs(spectrum) * phase, s=h.shape)


def faithfulness(model: nn.Module, image: torch.Tensor, explanation: Explanation | np.ndarray,
                 target: int | None = None, *, steps: int = 20, insertion: bool = True, random_maps: int = 2,
                 seed: int = 0, internal_batch_size: int = 16) -> Faithfulness:
    """Deletion (and insertion) AUC of a map, and the mean AUC of `random_maps` random maps as smooth
    as it (`random_like`), on the same image and target."""
    if isinstance(explanation, Explanation):
        heat, target = explanation.map, explanation.target if target is None else target
    else:
        heat = np.asarray(explanation)
    if target is None:
        raise ConfigError("faithfulness needs the target class of a bare map")
    if steps < 1 or random_maps < 1:
        raise ConfigError(f"steps and random_maps must be at least 1, not {steps} and {random_maps}")
    order = pixel_order(heat, seed)
    randoms = [pixel_order(random_like(heat, seed + 1 + k), seed) for k in range(random_maps)]
    kw = dict(steps=steps, internal_batch_size=internal_batch_size)

    def mean_auc(mode: str) -> float:
        return float(np.mean([auc(perturbation_curve(model, image, r, target, mode=mode, **kw)) for r in randoms]))

    deletion = perturbation_curve(model, image, order, target, mode="deletion", **kw)
    ins = perturbation_curve(model, image, order, target, mode="insertion", **kw) if insertion else None
    return Faithfulness(auc(deletion), mean_auc("deletion"), auc(ins) if ins is not None else None,
                        mean_auc("insertion") if insertion else None, deletion.tolist(),
                        ins.tolist() if ins is not None else None, steps)


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a flat array, ties given their average rank (float64)."""
    v = np.asarray(values).reshape(-1)
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    edges = np.concatenate(([0], np.flatnonzero(sorted_v[1:] != sorted_v[:-1]) + 1, [len(v)]))
    average = (edges[:-1] + edges[1:] + 1) / 2.0  # mean of ranks lo+1 .. hi
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.repeat(average, np.diff(edges))
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally sized arrays (NaN when either is constant)."""
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of `model` with every layer re-initialised (same architecture, weights at random)."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in clone.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
    return clone


def randomization_check(model: nn.Module, image: torch.Tensor, method: str, target: int | None = None, *,
                        seed: int = 0, **options: Any) -> dict[str, Any]:
    """Model-randomisation sanity check (Adebayo et al. 2018): Spearman correlation between the map of
    the trained model and that of the same architecture with random weights, same image and target.

    Near 1: the map hardly depends on what the network learned (an edge detector); low: it does.
    Returns {"spearman", "trained": Explanation, "randomized": Explanation}.
    """
    trained = explain(model, image, method, target, **options)
    randomized = explain(randomized_copy(model, seed), image, method, trained.target, **options)
    return {"spearman": spearman(trained.map, randomized.map), "trained": trained, "randomized": randomized}


# -- pictures -----------------------------------------------------------------------------------------

def unit_heat(heat: np.ndarray) -> np.ndarray:
    """The positive part of a map scaled to [0, 1] by its 99.5th percentile (robust to a few hot pixels)."""
    h = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    top = float(np.percentile(h, 99.5)) if h.size else 0.0
    if top <= 0:
        top = float(h.max()) if h.size else 0.0
    return (h / top).clip(0, 1) if top > 0 else np.zeros_like(h)


def input_to_rgb(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """A model input (1, C, H, W) back to displayable uint8 (H, W, 3), undoing the normalisation."""
    t = x.detach().float().cpu()[0]
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    img = (t * s + m).clamp(0, 1)
    if img.shape[0] == 1:
        img = img.repeat(3, 1, 1)
    return (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def model_view(classifier: Any, image: Any) -> Any:
    """The part of a PIL image the classifier looks at (its centre square for ImageNet models), in RGB."""
    img = image.convert("RGB")
    if getattr(classifier, "center_crop", False):
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    return img


def overlay(image: Any, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> Any:
    """The heat map (positive part, resized bilinearly) coloured with `cmap` and blended over the image.

    `image`: a PIL image or uint8 array (H, W[, C]); returns a PIL RGB image of the image's size,
    pixel = (1 - alpha) * image + alpha * colour.
    """
    from matplotlib import colormaps
    from PIL import Image

    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must lie between 0 and 1, not {alpha}")
    if isinstance(image, Image.Image):
        base = np.asarray(image.convert("RGB"), dtype=np.float32)
    else:
        a = np.asarray(image)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        base = np.stack([a] * 3, axis=-1).astype(np.float32) if a.ndim == 2 else a[:, :, :3].astype(np.float32)
    h, w = base.shape[:2]
    unit = unit_heat(heat)
    if unit.shape != (h, w):
        unit = np.asarray(Image.fromarray(unit.astype(np.float32)).resize((w, h), Image.Resampling.BILINEAR)).clip(0, 1)
    colour = colormaps[cmap](unit)[:, :, :3] * 255.0
    out = (1.0 - alpha) * base + alpha * colour
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
