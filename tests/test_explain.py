"""Explanations: one verb over the catalogue, checked on a real photo with the pretrained EfficientNet-Lite0
and for what they leave behind (no hooks, same model state); tests/test_explain_catalogue.py checks every
method against the library called directly on a small ReLU network."""

import numpy as np
import pytest
import torch
from nets import SmallCNN
from torch import nn

from cvdemo import explain as ex
from cvdemo.errors import ConfigError, ModelError


class Bomb(nn.Module):
    """Identity that raises on its n-th call: an error in the middle of an explanation."""

    def __init__(self, at: int):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("boom")
        return x


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               and not m._backward_pre_hooks for m in model.modules())


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = torch.randn(1, 3, 16, 16)
    return model, x


# Few steps, samples and windows: the test checks that each method runs on a real network, not its quality.
# Score-CAM and Ablation-CAM read a 16-channel layer (one forward pass per channel); Ablation-CAM's layer
# must be one called with the input alone (EfficientNet-Lite's blocks take keyword arguments).
SMALL_LAYER = {"layer": "_blocks.0._project_conv"}
OPTIONS = {"integrated_gradients": {"n_steps": 4, "internal_batch_size": 2}, "smoothgrad": {"n_samples": 2},
           "smoothgrad_sq": {"n_samples": 2}, "vargrad": {"n_samples": 2}, "gradient_shap": {"n_samples": 2},
           "deeplift_shap": {"n_baselines": 2}, "feature_ablation": {"n_segments": 8},
           "shapley": {"n_segments": 8, "n_samples": 1}, "scorecam": SMALL_LAYER, "ablationcam": SMALL_LAYER,
           "occlusion": {"window": 112, "stride": 56, "internal_batch_size": 9}}


@pytest.fixture(scope="module")
def lite0():
    from cvdemo.predict import Classifier

    return Classifier.pretrained("efficientnet_lite0")


@pytest.fixture(scope="module")
def cat_input(lite0, cat_png):
    """The whole photo (451x300) squashed to 224x224, so the background beside the cat is in view."""
    from cvdemo.data import prepare_image
    from cvdemo.predict import read_image_file

    image = read_image_file(cat_png)
    return image, prepare_image(image, size=224, mean=lite0.mean, std=lite0.std, channels=3)


@pytest.mark.slow
@pytest.mark.parametrize("method", ex.METHODS)
def test_every_method_on_efficientnet_lite0_at_224(lite0, cat_input, method):
    _, x = cat_input
    before = [p.requires_grad for p in lite0.model.parameters()]
    if method == "lrp":  # ReLU6 and padded convolutions have no LRP rule: a sentence, not a wrong map
        with pytest.raises(ModelError, match="LRP has no propagation rule for Conv2dDynamicSamePadding, ReLU6"):
            ex.explain(lite0.model, x, method)
        assert no_hooks(lite0.model)
        return
    exp = ex.explain(lite0.model, x, method, **OPTIONS.get(method, {}))
    assert exp.map.shape == (224, 224) and exp.map.dtype == np.float32
    assert np.isfinite(exp.map).all() and exp.map.std() > 0
    assert exp.target == int(lite0.model(x).argmax()) and 0 < exp.target_prob <= 1
    assert exp.seconds > 0 and exp.method == method
    assert no_hooks(lite0.model) and [p.requires_grad for p in lite0.model.parameters()] == before


def test_gradcam_on_the_cat_photo_points_at_the_cat_and_beats_random_maps(lite0, cat_input):
    image, x = cat_input
    exp = ex.explain_image(lite0, image, "gradcam", arch="efficientnet_lite0")  # cropped view: runs
    assert exp.options["layer"] == "_bn1" and "cat" in lite0.classes[exp.target]
    exp = ex.explain(lite0.model, x, "gradcam", layer="_bn1")
    assert "cat" in lite0.classes[exp.target]
    # The cat's face (eyes, nose, mouth) in the 451x300 photo, checked by eye on a drawn box;
    # the rest of the photo is forehead, ears, body and the room behind.
    x0, y0, x1, y1 = (round(110 * 224 / 451), round(50 * 224 / 300), round(360 * 224 / 451), round(290 * 224 / 300))
    inside = np.zeros((224, 224), bool)
    inside[y0:y1, x0:x1] = True
    per_pixel_in, per_pixel_out = exp.map[inside].mean(), exp.map[~inside].mean()
    assert per_pixel_in > 2 * per_pixel_out, (per_pixel_in, per_pixel_out)
    f = ex.faithfulness(lite0.model, x, exp, steps=10, insertion=False, random_maps=3, infidelity_samples=0,
                        sensitivity_samples=0, road_percentiles=())  # deletion only: tests/test_faithfulness.py
    assert f.deletion_auc < f.deletion_random_auc - 0.05, f
    assert f.deletion_curve[0] == pytest.approx(exp.target_prob, abs=1e-4)


@pytest.mark.parametrize("method", ex.METHODS)
def test_an_error_mid_explanation_leaves_no_hooks_and_restores_the_model(method):
    torch.manual_seed(0)
    model = SmallCNN()
    # The first forward pass inside the method: methods that start on the unperturbed image make it their
    # probability pass (call 1); the others run a separate probability pass first (call 1, then 2).
    model.features.insert(2, Bomb(at=1 if method in ex.FIRST_PASS_CLEAN else 2))
    model.train()
    model.fc.bias.requires_grad_(False)
    # LRP refuses the unknown Bomb layer before any pass
    with pytest.raises(ModelError if method == "lrp" else RuntimeError, match="Bomb" if method == "lrp" else "boom"):
        ex.explain(model, torch.randn(1, 3, 16, 16), method)
    assert no_hooks(model)
    assert model.training
    assert not model.fc.bias.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "fc.bias")
    assert all(p.grad is None for p in model.parameters())


def test_methods_equal_captum_on_a_small_network(tiny):
    from captum.attr import (
        GuidedBackprop,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        Occlusion,
        Saliency,
    )

    model, x = tiny
    t = int(model(x).argmax())
    ours = ex.explain(model, x, "saliency", t).map
    ref = Saliency(model).attribute(x, target=t, abs=True).amax(1)[0].detach().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)

    ours = ex.explain(model, x, "integrated_gradients", t, n_steps=8, internal_batch_size=3).map
    ref = IntegratedGradients(model).attribute(x, baselines=0.0, target=t, n_steps=8, method="gausslegendre",
                                               internal_batch_size=3).sum(1)[0].detach().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)

    ours = ex.explain(model, x, "occlusion", t, window=4, stride=2, internal_batch_size=10).map
    ref = Occlusion(lambda z: torch.softmax(model(z), 1)).attribute(
        x, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), baselines=0.0, target=t,
        perturbations_per_eval=10)[0, 0].detach().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)

    ours = ex.explain(model, x, "guided_backprop", t).map
    ref = GuidedBackprop(model).attribute(x, target=t).abs().amax(1)[0].detach().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)

    ours = ex.explain(model, x, "gradcam", t, layer="features.4").map
    cam = LayerGradCam(model, model.features[4]).attribute(x, target=t, relu_attributions=True)
    ref = LayerAttribution.interpolate(cam, (16, 16), "bilinear")[0, 0].detach().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)
    assert no_hooks(model)


def test_cam_adds_up_to_the_logit_and_refuses_networks_without_global_pooling(tiny):
    model, x = tiny
    exp = ex.explain(model, x, "cam", target=2)
    # CAM averaged over the image, plus the bias, is the class's logit (bilinear upsampling keeps the mean here)
    cam_small = torch.einsum("bkhw,k->bhw", model.features(x), model.fc.weight[2])
    assert float(cam_small.mean() + model.fc.bias[2]) == pytest.approx(float(model(x)[0, 2]), rel=1e-5)
    expected = torch.nn.functional.interpolate(cam_small[:, None], size=(16, 16), mode="bilinear")[0, 0]
    np.testing.assert_allclose(exp.map, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    mlp_head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 8), nn.ReLU(),
                             nn.Linear(8, 3))
    with pytest.raises(ModelError, match="use gradcam"):
        ex.explain(mlp_head, x, "cam")
    assert no_hooks(mlp_head)


def test_default_cam_layer_is_the_last_convolution(tiny):
    model, x = tiny
    assert ex.find_cam_layer(model) == "features.3"
    np.testing.assert_allclose(ex.explain(model, x, "gradcam").map,
                               ex.explain(model, x, "gradcam", layer="features.3").map)


def test_batching_bounds_the_batch_size(tiny):
    model, x = tiny
    sizes = []
    handle = model.register_forward_pre_hook(lambda m, a: sizes.append(a[0].shape[0]))
    try:
        ex.explain(model, x, "integrated_gradients", n_steps=10, internal_batch_size=4)
        assert max(sizes) <= 4 and sum(sizes) - 1 == 10  # one probability pass, then 10 interpolated images
        sizes.clear()
        ex.explain(model, x, "occlusion", window=4, stride=4, internal_batch_size=6)
        # the unperturbed image once (probabilities and the occlusion reference), then 16 occluded copies,
        # 6 per forward pass
        assert sizes == [1, 6, 6, 4]
        sizes.clear()
        ex.explain(model, x, "smoothgrad", n_samples=5, internal_batch_size=2)
        assert max(sizes) <= 2
    finally:
        handle.remove()


def test_bad_method_options_and_targets_are_user_errors(tiny):
    model, x = tiny
    with pytest.raises(ConfigError, match="unknown explanation method 'lime'"):
        ex.explain(model, x, "lime")
    with pytest.raises(ConfigError, match="has no option n_steps"):
        ex.explain(model, x, "gradcam", n_steps=3)
    with pytest.raises(ConfigError, match="from 0 to 4"):
        ex.explain(model, x, "saliency", target=5)
    with pytest.raises(ConfigError, match="base must be one of"):
        ex.explain(model, x, "smoothgrad", base="smoothgrad")
    with pytest.raises(ConfigError, match="at least 1"):
        ex.explain(model, x, "integrated_gradients", internal_batch_size=0)
    with pytest.raises(ConfigError, match="float tensor"):
        ex.explain(model, np.zeros((1, 3, 16, 16)), "saliency")
    exp = ex.explain(model, x, "smoothgrad", base="integrated_gradients", n_steps=3, n_samples=2)
    assert exp.map.shape == (16, 16)


def test_deletion_curve_runs_from_the_image_to_the_baseline(tiny):
    model, x = tiny
    exp = ex.explain(model, x, "saliency")
    f = ex.faithfulness(model, x, exp, steps=8)
    probs = torch.softmax(model(torch.cat([x, torch.zeros_like(x)])), 1)[:, exp.target].detach().numpy()
    assert len(f.deletion_curve) == 9
    assert f.deletion_curve[0] == pytest.approx(probs[0], rel=1e-5)
    assert f.deletion_curve[-1] == pytest.approx(probs[1], rel=1e-5)
    assert f.insertion_curve[-1] == pytest.approx(probs[0], rel=1e-5)
    assert 0 <= f.deletion_auc <= 1 and 0 <= f.insertion_random_auc <= 1


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 300).astype(float)
    b = a + rng.normal(0, 2, 300)
    assert ex.spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert np.isnan(ex.spearman(np.ones(5), np.arange(5)))


def test_randomising_the_weights_changes_gradcam(digits_run):
    """Model-randomisation check on the trained LeNet: Grad-CAM depends on the learned weights."""
    from PIL import Image

    from cvdemo.data import load_dataset
    from cvdemo.predict import Classifier

    clf = Classifier.from_run(digits_run)
    image, _ = load_dataset("digits").test[3]
    x = clf.to_input(Image.fromarray(image[0].numpy()))
    check = ex.randomization_check(clf.model, x, "gradcam")
    assert check["spearman"] < 0.5, check["spearman"]
    assert check["trained"].target == check["randomized"].target
    assert no_hooks(clf.model)


def test_overlay_blends_the_heat_map_over_the_image():
    from PIL import Image

    image = Image.new("RGB", (40, 30), (10, 200, 30))
    heat = np.zeros((8, 8), np.float32)
    heat[2:4, 2:4] = 1.0
    out = ex.overlay(image, heat, alpha=0.5)
    assert out.mode == "RGB" and out.size == (40, 30)
    assert np.array_equal(np.asarray(ex.overlay(image, heat, alpha=0.0)), np.asarray(image))
    a = np.asarray(out).astype(int)
    assert a[10, 12, 0] > a[28, 38, 0]  # hot region reddish, cold corner not
    grey = ex.overlay(np.zeros((8, 8), np.uint8), heat)
    assert grey.size == (8, 8)
    with pytest.raises(ConfigError):
        ex.overlay(image, heat, alpha=2)


def test_faithfulness_verdict_asks_both_deletion_and_insertion():
    def scores(deletion, insertion):
        return ex.Faithfulness(deletion, 0.3, insertion, 0.4 if insertion is not None else None, [], None, 10)

    assert scores(0.2, 0.5).verdict() == "better"
    assert scores(0.4, 0.5).verdict() == "mixed"   # e.g. Grad-CAM on a photo the cat fills
    assert scores(0.2, 0.3).verdict() == "mixed"
    assert scores(0.4, 0.3).verdict() == "worse"
    assert scores(0.2, None).verdict() == "better"  # deletion only
    assert scores(0.2, 0.5).to_dict()["verdict"] == "better"
