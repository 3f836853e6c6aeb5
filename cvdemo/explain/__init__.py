"""Why did the network say that? One verb over the attribution methods of Captum and pytorch-grad-cam.

    x = classifier.to_input(pil_image)                  # float (1, C, H, W) model input
    exp = explain(classifier.model, x, "gradcam")       # target defaults to the predicted class
    exp.map                                             # float32 (H, W): higher = more evidence for exp.target
    overlay(model_view(classifier, pil_image), exp.map) # PIL RGB image, heat map over the photo
    faithfulness(classifier.model, x, exp)              # deletion / insertion AUC against a random order

Methods: `CATALOGUE` (`cvdemo.explain.catalogue`) lists every one with its family, library class, cost
and a one-line "what it shows"; `cvdemo explain --list` prints it. The maths is Captum's (gradient,
reference, noise, guided, perturbation and relevance families, and Grad-CAM) and pytorch-grad-cam's
(Grad-CAM++, XGrad-CAM, Eigen-CAM, LayerCAM, HiResCAM, Score-CAM, Ablation-CAM, FullGrad); classic
CAM is ours. Options per method: `accepted_options(name)`; the common ones:

    integrated_gradients  n_steps=32 (Gauss-Legendre), baseline=0.0, internal_batch_size
    smoothgrad            base="saliency", n_samples=16, stdev=0.15 (of the input range), seed=0, plus the
                          base method's options (also smoothgrad_sq, vargrad: Captum's NoiseTunnel)
    occlusion             window (pixels, default side/7), stride (window/2), baseline=0.0,
                          internal_batch_size occluded copies per forward pass
    feature_ablation,     n_segments=50 SLIC superpixels (scikit-image), baseline, internal_batch_size;
    shapley               shapley also n_samples=25 random orders
    baseline              a number, "black", "blurred" or "noise" (see `cvdemo.explain.captum_methods`)
    gradcam and the CAMs  layer (dotted path; default the last Conv2d; explain_image(arch=) the registry's)
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
    catalogue     CATALOGUE: every method, its family, library class, cost and one-line description
    captum_methods  the Captum calls (and NoiseTunnel), baselines, superpixels, the CAM layer lookup
    activations   ReLU6 / SiLU / ... in the form Captum's guided and DeepLift rules expect, on a copy
    cam_library   pytorch-grad-cam's CAM family;  cam: classic CAM (ours: neither library has it)
    metrics       faithfulness: deletion / insertion curves against surrogate random maps
    sanity        the model-randomisation check (rank correlation with a randomly initialised copy)
    drawing       unit_heat, input_to_rgb, model_view, overlay (matplotlib imported on first use)
    wording       in_words (the faithfulness checks in a student's words), layer_names ('stage 1 (first block)')
"""

from cvdemo.explain.captum_methods import find_cam_layer
from cvdemo.explain.catalogue import (
    BY_NAME,
    CATALOGUE,
    FAMILIES,
    FAMILY_NOTES,
    MethodInfo,
    by_family,
    catalogue_rows,
    estimate_seconds,
    forward_passes,
)
from cvdemo.explain.drawing import input_to_rgb, model_view, overlay, unit_heat
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
from cvdemo.explain.wording import in_words, layer_names

__all__ = [
    "BATCH_DEFAULTS", "BY_NAME", "CATALOGUE", "FAMILIES", "FAMILY_NOTES", "FIRST_PASS_CLEAN", "METHODS", "SIGNED",
    "Explanation", "Faithfulness", "MethodInfo", "RandomizationCheck",
    "accepted_options", "auc", "by_family", "catalogue_rows", "estimate_seconds", "forward_passes", "check_options", "check_target", "default_batch", "explain", "explain_image",
    "explaining", "faithfulness", "find_cam_layer", "in_words", "input_to_rgb", "layer_names", "model_view", "overlay",
    "perturbation_curve", "pixel_order", "random_like", "randomization_check", "randomized_copy", "rankdata",
    "spearman", "unit_heat",
]
