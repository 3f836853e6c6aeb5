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

Where things live, one concern per module:

    verb          explain, explain_image, Explanation
    methods       the method table (METHODS, options each accepts, option checks)
    session       explaining(): eval mode, frozen parameters, hooks removed; batch sizes; input checks
    gradients     saliency, integrated gradients, guided backpropagation
    cam           Grad-CAM, guided Grad-CAM, classic CAM, and the layer they read
    occlusion     occlusion;  smoothgrad: noisy averages over any method
    metrics       faithfulness: deletion / insertion curves against surrogate random maps
    sanity        the model-randomisation check (rank correlation with a randomly initialised copy)
    drawing       unit_heat, input_to_rgb, model_view, overlay (matplotlib imported on first use)
"""

from cvdemo.explain.cam import find_cam_layer
from cvdemo.explain.drawing import input_to_rgb, model_view, overlay, unit_heat
from cvdemo.explain.gradients import GUIDED_ACTIVATIONS
from cvdemo.explain.methods import FIRST_PASS_CLEAN, METHODS, SIGNED, accepted_options, check_options
from cvdemo.explain.metrics import (
    Faithfulness,
    auc,
    faithfulness,
    perturbation_curve,
    pixel_order,
    random_like,
)
from cvdemo.explain.sanity import RandomizationCheck, randomization_check, randomized_copy, rankdata, spearman
from cvdemo.explain.session import BATCH_DEFAULTS, check_target, default_batch, explaining
from cvdemo.explain.verb import Explanation, explain, explain_image

__all__ = [
    "BATCH_DEFAULTS", "FIRST_PASS_CLEAN", "GUIDED_ACTIVATIONS", "METHODS", "SIGNED",
    "Explanation", "Faithfulness", "RandomizationCheck",
    "accepted_options", "auc", "check_options", "check_target", "default_batch", "explain", "explain_image",
    "explaining", "faithfulness", "find_cam_layer", "input_to_rgb", "model_view", "overlay",
    "perturbation_curve", "pixel_order", "random_like", "randomization_check", "randomized_copy", "rankdata",
    "spearman", "unit_heat",
]
