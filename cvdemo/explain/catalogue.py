"""The method catalogue: every attribution method `explain` offers, in one table.

The CLI (`cvdemo explain --list`, `--method all`), the Explain page and the report all read this table;
`cvdemo.explain.methods` maps each name to the function that computes it.

    for m in CATALOGUE: print(m.display, m.family, m.library, m.cost, m.description)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Family order is display order: from one backward pass to many forward passes.
FAMILIES = ("gradient", "reference", "noise", "guided", "CAM", "perturbation", "relevance")
FAMILY_NOTES = {
    "gradient": "how the class score changes with each pixel (one backward pass)",
    "reference": "how the score moves from a reference image (baseline) to this one",
    "noise": "another method averaged over noisy copies of the image (NoiseTunnel over any gradient method)",
    "guided": "gradients with negative signals blocked at each ReLU: sharp edges, weakly class-specific",
    "CAM": "which regions of the last convolutional feature map carry the class",
    "perturbation": "how the score drops when parts of the image are hidden (forward passes only)",
    "relevance": "the score redistributed layer by layer back to the pixels",
}
COSTS = ("fast", "medium", "slow")  # one or two passes / tens of passes / hundreds of passes


@dataclass(frozen=True)
class MethodInfo:
    name: str              # what `explain(..., method=name)` takes
    family: str            # one of FAMILIES
    library: str           # "captum", "grad-cam" (pytorch-grad-cam) or "cvdemo"
    library_class: str     # the class doing the maths, e.g. "IntegratedGradients"
    baseline: bool         # needs a reference input (black / blurred / noise / a number)
    conv_layer: bool       # reads a convolutional feature map (option `layer`)
    cost: str              # one of COSTS, on a CPU at 224x224
    signed: bool           # the map has meaningful negative values (overlays show the positive part)
    shows: str             # one line: what the map shows, in the method's own terms
    display: str           # its name for people: "Grad-CAM", "Input × gradient"
    description: str       # one line a student understands: what the map points at


CATALOGUE: tuple[MethodInfo, ...] = (
    MethodInfo("saliency", "gradient", "captum", "Saliency", False, False, "fast", False,
               "|d score / d pixel|: pixels whose change would move the score most",
               'Saliency', 'the pixels that would change the answer most if they changed a little'),
    MethodInfo("input_x_gradient", "gradient", "captum", "InputXGradient", False, False, "fast", True,
               "pixel value x gradient: first-order contribution of each pixel",
               'Input × gradient', "each pixel's push towards the class: its brightness times how much the answer reacts to it"),
    MethodInfo("integrated_gradients", "reference", "captum", "IntegratedGradients", True, False, "medium", True,
               "gradients summed along the path from the baseline; adds up to the score difference",
               'Integrated gradients', 'how much each pixel adds to the answer, compared with a plain black picture'),
    MethodInfo("deeplift", "reference", "captum", "DeepLift", True, False, "fast", True,
               "contribution of each pixel to the score's difference from the baseline (rescale rule)",
               'DeepLIFT', 'how much each pixel adds to the answer compared with a plain picture, in one quick pass'),
    MethodInfo("deeplift_shap", "reference", "captum", "DeepLiftShap", True, False, "medium", True,
               "DeepLift averaged over several baselines: approximate SHAP values",
               'DeepLIFT SHAP', "the DeepLIFT map compared with several plain pictures and averaged: each pixel's fair share"),
    MethodInfo("gradient_shap", "reference", "captum", "GradientShap", True, False, "medium", True,
               "expected gradients between noisy copies and random baselines: approximate SHAP values",
               'Gradient SHAP', "each pixel's fair share of the answer, estimated from noisy and blank versions of the photo"),
    MethodInfo("smoothgrad", "noise", "captum", "NoiseTunnel", False, False, "medium", False,
               "the base method averaged over noisy copies: less speckle",
               'SmoothGrad', 'saliency averaged over many slightly noisy copies of the photo: less speckle'),
    MethodInfo("smoothgrad_sq", "noise", "captum", "NoiseTunnel", False, False, "medium", False,
               "mean of the squared base map over noisy copies: only consistent evidence stays",
               'SmoothGrad²', 'like SmoothGrad, but only evidence that shows up in every noisy copy stays'),
    MethodInfo("vargrad", "noise", "captum", "NoiseTunnel", False, False, "medium", False,
               "variance of the base map over noisy copies: where the explanation is unstable",
               'VarGrad', 'where the explanation keeps changing between noisy copies of the photo'),
    MethodInfo("guided_backprop", "guided", "captum", "GuidedBackprop", False, False, "fast", False,
               "gradients with negative signals blocked at every ReLU: crisp edges",
               'Guided backprop', 'sharp outlines and edges the network reacts to (barely depends on the class)'),
    MethodInfo("deconvolution", "guided", "captum", "Deconvolution", False, False, "fast", False,
               "the score projected back through the network with rectified signals (Zeiler & Fergus)",
               'Deconvolution', 'the patterns the network reacts to, projected back onto the photo'),
    MethodInfo("guided_gradcam", "guided", "captum", "GuidedGradCam", False, True, "fast", False,
               "guided backprop inside the Grad-CAM region: fine detail of the class's evidence",
               'Guided Grad-CAM', "the sharp edges of guided backprop, kept only inside Grad-CAM's region"),
    MethodInfo("cam", "CAM", "cvdemo", "cam (ours)", False, True, "fast", True,
               "classic CAM: the head's weights over the last feature map (global-pool + linear nets)",
               'CAM', 'the original class activation map: which regions the last layer counts for the class'),
    MethodInfo("gradcam", "CAM", "captum", "LayerGradCam", False, True, "fast", False,
               "feature maps weighted by their average gradient: coarse class region",
               'Grad-CAM', 'the rough region of the photo that made the network choose the class'),
    MethodInfo("gradcam_pp", "CAM", "grad-cam", "GradCAMPlusPlus", False, True, "fast", False,
               "Grad-CAM with higher-order weights: better at several instances of the class",
               'Grad-CAM++', 'like Grad-CAM, but better at finding several objects of the class'),
    MethodInfo("xgradcam", "CAM", "grad-cam", "XGradCAM", False, True, "fast", False,
               "Grad-CAM with activation-normalised weights (axiom-based)",
               'XGrad-CAM', 'a variant of Grad-CAM that weighs the regions a little more carefully'),
    MethodInfo("eigencam", "CAM", "grad-cam", "EigenCAM", False, True, "fast", False,
               "first principal component of the feature maps: class-agnostic salient region",
               'Eigen-CAM', 'the most striking region of the photo for the network, whatever the class'),
    MethodInfo("layercam", "CAM", "grad-cam", "LayerCAM", False, True, "fast", False,
               "positive gradients weighting each location: finer than Grad-CAM",
               'LayerCAM', 'like Grad-CAM, with finer detail'),
    MethodInfo("hirescam", "CAM", "grad-cam", "HiResCAM", False, True, "fast", False,
               "gradient x activation per location, no averaging: faithful to the feature map",
               'HiResCAM', "like Grad-CAM, but keeping each location's own evidence instead of averaging"),
    MethodInfo("scorecam", "CAM", "grad-cam", "ScoreCAM", False, True, "slow", False,
               "feature maps weighted by the score of the image masked with each: gradient-free",
               'Score-CAM', 'regions weighted by how sure the network stays when it sees only that region (slow)'),
    MethodInfo("ablationcam", "CAM", "grad-cam", "AblationCAM", False, True, "slow", False,
               "feature maps weighted by the score drop when each is zeroed: gradient-free",
               'Ablation-CAM', 'regions weighted by how much the answer drops when each one is switched off (slow)'),
    MethodInfo("fullgrad", "CAM", "grad-cam", "FullGrad", False, False, "fast", False,
               "input gradients plus bias gradients of every layer: complete, all scales",
               'FullGrad', 'evidence from every layer added up: small details and large regions together'),
    MethodInfo("occlusion", "perturbation", "captum", "Occlusion", True, False, "medium", True,
               "drop in the class probability when a sliding square is hidden",
               'Occlusion', 'how much the answer drops when a small grey square hides each part of the photo'),
    MethodInfo("feature_ablation", "perturbation", "captum", "FeatureAblation", True, False, "medium", True,
               "drop in the class probability when each SLIC superpixel is hidden",
               'Superpixel ablation', 'how much the answer drops when each patch of similar colour is hidden'),
    MethodInfo("shapley", "perturbation", "captum", "ShapleyValueSampling", True, False, "slow", True,
               "sampled Shapley value of each SLIC superpixel: fair share of the probability",
               'Shapley (superpixels)', "each patch's fair share of the answer, from hiding patches in random groups (slow)"),
    MethodInfo("lrp", "relevance", "captum", "LRP", False, False, "fast", True,
               "layer-wise relevance propagation (epsilon rule); Conv/Linear/BatchNorm/pooling/ReLU nets only",
               'LRP', 'the answer passed back layer by layer and shared out among the pixels'),
)

BY_NAME = {m.name: m for m in CATALOGUE}
METHODS = tuple(m.name for m in CATALOGUE)
SIGNED = tuple(m.name for m in CATALOGUE if m.signed)
NOISE_TYPES = {"smoothgrad": "smoothgrad", "smoothgrad_sq": "smoothgrad_sq", "vargrad": "vargrad"}


def by_family() -> dict[str, list[MethodInfo]]:
    """The catalogue grouped by family, in FAMILIES order."""
    return {f: [m for m in CATALOGUE if m.family == f] for f in FAMILIES}


def catalogue_rows() -> list[dict[str, Any]]:
    """The catalogue as plain rows (for a table, JSON or a report)."""
    return [{"method": m.name, "name": m.display, "family": m.family, "library": m.library, "class": m.library_class,
             "baseline": m.baseline, "conv layer": m.conv_layer, "cost": m.cost, "shows": m.shows,
             "description": m.description}
            for m in CATALOGUE]


def forward_passes(name: str, options: dict[str, Any] | None = None, channels: int = 1280,
                   size: tuple[int, int] = (224, 224)) -> int:
    """About how many single-image forward (+ backward) passes method `name` makes with `options`;
    `channels`: the CAM layer's channel count (Score-CAM and Ablation-CAM run one pass per channel)."""
    o = options or {}
    if name in ("scorecam", "ablationcam"):
        return channels
    if name == "shapley":
        return int(o.get("n_samples", 25)) * int(o.get("n_segments", 50))
    if name == "feature_ablation":
        return int(o.get("n_segments", 50))
    if name == "occlusion":
        win = int(o.get("window") or max(1, min(size) // 7))
        step = int(o.get("stride") or max(1, win // 2))
        return ((size[0] - win) // step + 1) * ((size[1] - win) // step + 1)
    if name == "integrated_gradients":
        return int(o.get("n_steps", 32))
    if name in ("gradient_shap", "deeplift_shap"):
        return int(o.get("n_samples", 8))
    if name in NOISE_TYPES:
        return int(o.get("n_samples", 16)) * forward_passes(str(o.get("base", "saliency")), o, channels, size)
    return 1


def estimate_seconds(model: nn.Module, x: torch.Tensor, name: str, options: dict[str, Any] | None = None,
                     channels: int = 1280) -> float:
    """Rough wall time of `explain(model, x, name, **options)`: one timed forward pass of x (1, C, H, W)
    times `forward_passes`, doubled for gradient methods (a backward pass costs about a forward)."""
    with torch.no_grad():
        started = time.perf_counter()
        model(x)
        once = time.perf_counter() - started
    gradient = BY_NAME[name].family not in ("perturbation",) and name not in ("scorecam", "ablationcam")
    return once * forward_passes(name, options, channels, (int(x.shape[-2]), int(x.shape[-1]))) * (2.0 if gradient else 1.0)
