"""Gradient, reference, perturbation, guided and relevance attributions: thin calls of Captum.

Each method takes the explaining `Session`, a batch `xb` (B, C, H, W) of model inputs and the target
class (None: the predicted one) and returns maps (B, H, W); its keyword options are the method's options
(`cvdemo.explain.methods` reads them from the signature). All the maths is Captum's: this module builds
the Captum object and its arguments (a `Plan`), runs it (through `NoiseTunnel` for the noise family)
and reduces the (B, C, H, W) attribution to one channel: |.| max over channels for unsigned gradient
maps (as Simonyan et al. draw them), the channel sum for signed ones, channel 0 where every channel
holds the same value (occlusion and superpixel ablations hide all channels together).

Captum sees `Scored(model)`: the model followed by the target's column (of the logits, or of the
softmax for the perturbation family, whose maps are probability drops). The first forward pass that
sees the unperturbed image resolves the target, so no method needs a pass of its own to find it.

Baselines (`baseline=`): a number (every input value set to it, 0.0 = the dataset mean after
normalisation), "black" (each channel's darkest value in this image), "blurred" (a Gaussian blur with
sigma = side / 20) or "noise" (uniform noise between each channel's minimum and maximum, seeded).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cvdemo.errors import ConfigError, ModelError
from cvdemo.explain.activations import captum_ready
from cvdemo.explain.session import Session, default_batch
from cvdemo.models import last_module_path
from cvdemo.models.features import layer_module

Baseline = float | str | torch.Tensor


def find_cam_layer(model: nn.Module) -> str:
    """Dotted path of the last nn.Conv2d in module order: a spatial feature map for any CNN."""
    return last_module_path(model, nn.Conv2d, f"{type(model).__name__} has no Conv2d layer, so Grad-CAM has no "
                                              "feature map; name one with layer=")


def cam_layer(session: Session, model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    """The feature-map module of `model` (the session's model or a copy of it) at `layer`: a dotted path,
    a module of the session's model, or None for `find_cam_layer`."""
    if isinstance(layer, nn.Module):
        if model is session.model:
            return layer
        paths = {id(m): p for p, m in session.model.named_modules()}
        if id(layer) not in paths:
            raise ModelError("the layer given is not part of the model")
        return layer_module(model, paths[id(layer)])
    return layer_module(model, layer if layer is not None else find_cam_layer(session.model))


class Scored(nn.Module):
    """model(x)[:, target], or softmax(model(x))[:, target]: the scalar per image Captum attributes.

    The first call resolves the target through the session (its row 0 is the unperturbed image for
    every method listed in FIRST_PASS_CLEAN; the others resolve it before they start)."""

    def __init__(self, session: Session, model: nn.Module, target: int | None, probabilities: bool = False):
        super().__init__()
        self.model = model
        self.session, self.target, self.probabilities = session, target, probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        t = self.session.resolve(logits, self.target)
        if self.probabilities:
            return torch.softmax(logits.float(), dim=1)[:, t]
        return logits[:, t]


def reference(kind: Baseline, x: torch.Tensor, n: int = 1, seed: int = 0) -> torch.Tensor | float:
    """The baseline input(s) for x (1, C, H, W): a number as is, else (n, C, H, W) (see module docstring)."""
    if isinstance(kind, torch.Tensor):
        b = kind.to(x.device, x.dtype)
        return (b.reshape(x.shape) if b.numel() == x.numel() else b.expand_as(x)).expand(n, *x.shape[1:])
    if isinstance(kind, (int, float)) and not isinstance(kind, bool):
        return float(kind) if n == 1 else torch.full((n, *x.shape[1:]), float(kind), dtype=x.dtype, device=x.device)
    lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    if kind == "black":
        base = lo.expand_as(x)
    elif kind == "blurred":
        from torchvision.transforms.functional import gaussian_blur

        sigma = max(1.0, min(x.shape[-2:]) / 20)
        base = gaussian_blur(x, [2 * int(3 * sigma) + 1] * 2, [sigma, sigma])
    elif kind == "noise":
        gen = torch.Generator().manual_seed(int(seed))
        u = torch.rand((n, *x.shape[1:]), generator=gen).to(x.device, x.dtype)
        return lo + u * (hi - lo)
    else:
        raise ConfigError(f"baseline must be a number, 'black', 'blurred' or 'noise', not {kind!r}")
    return base.expand(n, *x.shape[1:]).contiguous()


def superpixels(x: torch.Tensor, n_segments: int) -> torch.Tensor:
    """SLIC superpixels (scikit-image) of x (1, C, H, W) as a feature mask (1, 1, H, W) of labels 0..k-1."""
    from skimage.segmentation import slic

    t = x[0].detach().float().cpu()
    lo, hi = t.amin(dim=(1, 2), keepdim=True), t.amax(dim=(1, 2), keepdim=True)
    img = ((t - lo) / (hi - lo).clamp(min=1e-12)).permute(1, 2, 0).numpy()
    colour = img.shape[2] > 1
    labels = slic(img if colour else img[..., 0], n_segments=int(n_segments), compactness=10.0, start_label=0,
                  channel_axis=-1 if colour else None)
    return torch.as_tensor(labels, dtype=torch.long, device=x.device)[None, None]


def _absmax(a: torch.Tensor) -> torch.Tensor:
    return a.abs().amax(dim=1)


def _channel_sum(a: torch.Tensor) -> torch.Tensor:
    return a.sum(dim=1)


def _first_channel(a: torch.Tensor) -> torch.Tensor:
    return a[:, 0]


@dataclass
class Plan:
    """One Captum call: the attribution object, its `attribute` keyword arguments, the reduction to (B, H, W)."""

    attribution: Any
    kwargs: dict[str, Any] = field(default_factory=dict)
    reduce: Callable[[torch.Tensor], torch.Tensor] = _absmax
    model: nn.Module | None = None  # the model the plan explains, when a copy (hooks to check on it)


def _scored(session: Session, target: int | None, purpose: str | None = None,
            probabilities: bool = False, x: torch.Tensor | None = None) -> Scored:
    model = session.model if purpose is None else captum_ready(session.model, purpose, x)  # type: ignore[arg-type]
    return Scored(session, model, target, probabilities)


def plan_saliency(session: Session, xb: torch.Tensor, target: int | None) -> Plan:
    from captum.attr import Saliency

    return Plan(Saliency(_scored(session, target)), {"abs": True}, _absmax)


def plan_input_x_gradient(session: Session, xb: torch.Tensor, target: int | None) -> Plan:
    from captum.attr import InputXGradient

    return Plan(InputXGradient(_scored(session, target)), {}, _channel_sum)


def plan_integrated_gradients(session: Session, xb: torch.Tensor, target: int | None, n_steps: int = 32,
                              baseline: Baseline = 0.0, internal_batch_size: int | None = None) -> Plan:
    from captum.attr import IntegratedGradients

    return Plan(IntegratedGradients(_scored(session, target)),
                {"baselines": reference(baseline, xb), "n_steps": int(n_steps), "method": "gausslegendre",
                 "internal_batch_size": internal_batch_size or default_batch(xb.device)}, _channel_sum)


def plan_deeplift(session: Session, xb: torch.Tensor, target: int | None, baseline: Baseline = 0.0) -> Plan:
    from captum.attr import DeepLift

    scored = _scored(session, target, "deeplift", x=xb[:1])
    return Plan(DeepLift(scored), {"baselines": reference(baseline, xb)}, _channel_sum, scored.model)


def plan_deeplift_shap(session: Session, xb: torch.Tensor, target: int | None, baseline: Baseline = "noise",
                       n_baselines: int = 4, seed: int = 0) -> Plan:
    """DeepLift averaged over n_baselines references (identical ones for black / blurred / a number)."""
    from captum.attr import DeepLiftShap

    scored = _scored(session, target, "deeplift", x=xb[:1])
    refs = reference(baseline, xb, max(2, int(n_baselines)), seed)
    return Plan(DeepLiftShap(scored), {"baselines": refs}, _channel_sum, scored.model)


def plan_gradient_shap(session: Session, xb: torch.Tensor, target: int | None, baseline: Baseline = "noise",
                       n_baselines: int = 4, n_samples: int = 8, stdev: float = 0.0, seed: int = 0) -> Plan:
    """Expected gradients: n_samples random points between the image (plus noise of std stdev x the input
    range) and references drawn from n_baselines baselines. Seeded."""
    from captum.attr import GradientShap

    refs = reference(baseline, xb, max(1, int(n_baselines)), seed)
    sigma = float(stdev) * float(xb.max() - xb.min())
    return Plan(GradientShap(_scored(session, target)),
                {"baselines": refs, "n_samples": int(n_samples), "stdevs": sigma}, _channel_sum)


def plan_guided_backprop(session: Session, xb: torch.Tensor, target: int | None) -> Plan:
    from captum.attr import GuidedBackprop

    scored = _scored(session, target, "guided")
    return Plan(GuidedBackprop(scored), {}, _absmax, scored.model)


def plan_deconvolution(session: Session, xb: torch.Tensor, target: int | None) -> Plan:
    from captum.attr import Deconvolution

    scored = _scored(session, target, "guided")
    return Plan(Deconvolution(scored), {}, _absmax, scored.model)


def plan_gradcam(session: Session, xb: torch.Tensor, target: int | None,
                 layer: str | nn.Module | None = None) -> Plan:
    """Grad-CAM (Captum's LayerGradCam, ReLU of the weighted maps) upsampled bilinearly to the input."""
    from captum.attr import LayerAttribution, LayerGradCam

    size = tuple(xb.shape[-2:])

    def upsample(a: torch.Tensor) -> torch.Tensor:
        return LayerAttribution.interpolate(a, size, "bilinear")[:, 0]

    scored = _scored(session, target)
    return Plan(LayerGradCam(scored, cam_layer(session, session.model, layer)), {"relu_attributions": True},
                upsample)


def plan_guided_gradcam(session: Session, xb: torch.Tensor, target: int | None,
                        layer: str | nn.Module | None = None) -> Plan:
    from captum.attr import GuidedGradCam

    scored = _scored(session, target, "guided")
    return Plan(GuidedGradCam(scored, cam_layer(session, scored.model, layer)), {"interpolate_mode": "bilinear"},
                _absmax, scored.model)


def plan_occlusion(session: Session, xb: torch.Tensor, target: int | None, window: int | None = None,
                   stride: int | None = None, baseline: Baseline = 0.0,
                   internal_batch_size: int | None = None) -> Plan:
    """Drop in the target's probability when a window x window square (all channels) is set to the baseline,
    averaged over the windows covering each pixel (Captum's Occlusion); window defaults to side / 7, stride
    to window / 2; `internal_batch_size` occluded copies per forward pass."""
    from captum.attr import Occlusion

    c, h, w = xb.shape[1:]
    win = min(int(window or max(1, min(h, w) // 7)), h, w)
    step = int(stride or max(1, win // 2))
    return Plan(Occlusion(_scored(session, target, probabilities=True)),
                {"sliding_window_shapes": (c, win, win), "strides": (c, step, step),
                 "baselines": reference(baseline, xb),
                 "perturbations_per_eval": internal_batch_size or default_batch(xb.device, occlusion=True)},
                _first_channel)


def plan_feature_ablation(session: Session, xb: torch.Tensor, target: int | None, n_segments: int = 50,
                          baseline: Baseline = 0.0, internal_batch_size: int | None = None) -> Plan:
    """Drop in the target's probability when each SLIC superpixel (about n_segments) is set to the baseline."""
    from captum.attr import FeatureAblation

    return Plan(FeatureAblation(_scored(session, target, probabilities=True)),
                {"baselines": reference(baseline, xb), "feature_mask": superpixels(xb, n_segments),
                 "perturbations_per_eval": internal_batch_size or default_batch(xb.device, occlusion=True)},
                _first_channel)


def plan_shapley(session: Session, xb: torch.Tensor, target: int | None, n_segments: int = 50,
                 n_samples: int = 25, baseline: Baseline = 0.0, seed: int = 0,
                 internal_batch_size: int | None = None) -> Plan:
    """Shapley values of the SLIC superpixels for the target's probability, from n_samples random orders."""
    from captum.attr import ShapleyValueSampling

    return Plan(ShapleyValueSampling(_scored(session, target, probabilities=True)),
                {"baselines": reference(baseline, xb), "feature_mask": superpixels(xb, n_segments),
                 "n_samples": int(n_samples),
                 "perturbations_per_eval": internal_batch_size or default_batch(xb.device, occlusion=True)},
                _first_channel)


def plan_lrp(session: Session, xb: torch.Tensor, target: int | None) -> Plan:
    """Captum's LRP with its default (epsilon) rules, on a copy (it writes a `rule` onto each layer)."""
    import copy

    from captum.attr import LRP
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS

    allowed = (*SUPPORTED_LAYERS_WITH_RULES, *SUPPORTED_NON_LINEAR_LAYERS)
    leaves = [m for m in session.model.modules() if not list(m.children())]
    other = sorted({type(m).__name__ for m in leaves if type(m) not in allowed})
    if other:
        raise ModelError(f"LRP has no propagation rule for {', '.join(other)} layers in {type(session.model).__name__}"
                         "; it needs a network of Conv2d, Linear, BatchNorm2d, pooling, ReLU, Tanh and Dropout only. "
                         "Use deeplift or integrated_gradients for this model")
    scored = Scored(session, copy.deepcopy(session.model), target)
    return Plan(LRP(scored), {}, _channel_sum, scored.model)


PLANS: dict[str, Callable[..., Plan]] = {
    "saliency": plan_saliency, "input_x_gradient": plan_input_x_gradient,
    "integrated_gradients": plan_integrated_gradients, "deeplift": plan_deeplift,
    "deeplift_shap": plan_deeplift_shap, "gradient_shap": plan_gradient_shap,
    "guided_backprop": plan_guided_backprop, "deconvolution": plan_deconvolution, "gradcam": plan_gradcam,
    "guided_gradcam": plan_guided_gradcam, "occlusion": plan_occlusion, "feature_ablation": plan_feature_ablation,
    "shapley": plan_shapley, "lrp": plan_lrp,
}
SEEDED = ("deeplift_shap", "gradient_shap", "shapley")  # methods that draw random numbers inside Captum


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's (CPU, and the model's GPU if any) and NumPy's global random states seeded for one call and
    restored after it: Captum draws GradientShap's baselines and interpolation points with NumPy."""
    import numpy as np

    devices = [device.index or 0] if device.type == "cuda" else []
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            np.random.seed(int(seed))
            yield
    finally:
        np.random.set_state(state)


def run_plan(plan: Plan, xb: torch.Tensor, seed: int | None = None) -> torch.Tensor:
    """Captum's attribution of each row of xb, reduced to (B, H, W), under a seeded RNG when seed is given."""
    if seed is None:
        attributions = plan.attribution.attribute(xb, **plan.kwargs)
    else:
        with seeded(seed, xb.device):
            attributions = plan.attribution.attribute(xb, **plan.kwargs)
    return plan.reduce(attributions.detach()).float()


def captum_method(name: str) -> Callable[..., torch.Tensor]:
    """The method function of Captum plan `name`: (session, xb, target, **options) -> maps (B, H, W)."""
    build = PLANS[name]

    def method(session: Session, xb: torch.Tensor, target: int | None, **options: Any) -> torch.Tensor:
        seed = options.get("seed", 0) if name in SEEDED else None
        return run_plan(build(session, xb, target, **options), xb.detach(), seed)

    method.__signature__ = inspect.signature(build)  # type: ignore[attr-defined]
    method.__doc__ = build.__doc__
    return method


def noise_tunnel(session: Session, xb: torch.Tensor, target: int | None, nt_type: str, base: str = "saliency",
                 n_samples: int = 16, stdev: float = 0.15, seed: int = 0, internal_batch_size: int | None = None,
                 **base_options: Any) -> torch.Tensor:
    """Captum's NoiseTunnel over the base method: its map averaged (smoothgrad), its square averaged
    (smoothgrad_sq) or its variance (vargrad) over n_samples copies with Gaussian noise of standard
    deviation stdev x (max - min) of the image; `internal_batch_size` noisy copies per pass. Seeded."""
    from captum.attr import NoiseTunnel

    if base not in PLANS:
        raise ConfigError(f"{nt_type}'s base must be one of {', '.join(PLANS)}, not {base!r}")
    batch = internal_batch_size or default_batch(xb.device)
    plan = PLANS[base](session, xb, target, **base_options)
    sigma = float(stdev) * float(xb.max() - xb.min())
    with seeded(seed, xb.device):
        attributions = NoiseTunnel(plan.attribution).attribute(
            xb.detach(), nt_type=nt_type, nt_samples=int(n_samples), nt_samples_batch_size=batch, stdevs=sigma,
            **plan.kwargs)
    return plan.reduce(attributions.detach()).float()

