"""The method catalogue: every method runs on a small ReLU network, leaves nothing behind, and equals the
library (Captum or pytorch-grad-cam) called directly with the same settings."""

import copy

import numpy as np
import pytest
import torch
from nets import SmallCNN
from torch import nn

from cvdemo import explain as ex
from cvdemo.errors import ConfigError, ModelError
from cvdemo.explain.captum_methods import reference, seeded, superpixels


def hooks_left(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules()
            if m._forward_hooks or m._backward_hooks or m._forward_pre_hooks or m._backward_pre_hooks]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SmallCNN().eval(), torch.randn(1, 3, 24, 24)


OPTIONS = {"integrated_gradients": {"n_steps": 8, "internal_batch_size": 3},
           "smoothgrad": {"n_samples": 4, "internal_batch_size": 2}, "smoothgrad_sq": {"n_samples": 4},
           "vargrad": {"n_samples": 4}, "occlusion": {"window": 6, "stride": 3, "internal_batch_size": 10},
           "feature_ablation": {"n_segments": 8, "internal_batch_size": 4},
           "shapley": {"n_segments": 8, "n_samples": 3, "internal_batch_size": 4}}


def direct(name: str, model: nn.Module, x: torch.Tensor, t: int) -> np.ndarray:
    """The library called directly, with the settings OPTIONS and the defaults give `explain`."""
    import captum.attr as ca
    import pytorch_grad_cam as gc
    from pytorch_grad_cam.ablation_layer import AblationLayer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = model.features[3]
    probs = lambda z: torch.softmax(model(z), 1)  # noqa: E731
    sigma = 0.15 * float(x.max() - x.min())
    refs = reference("noise", x, 4, 0)
    nt = {"smoothgrad": "smoothgrad", "smoothgrad_sq": "smoothgrad_sq", "vargrad": "vargrad"}
    if name in nt:
        with seeded(0, x.device):
            a = ca.NoiseTunnel(ca.Saliency(model)).attribute(
                x, nt_type=nt[name], nt_samples=4, nt_samples_batch_size=OPTIONS[name].get("internal_batch_size", 8),
                stdevs=sigma, target=t, abs=True).amax(1)
    elif name == "gradcam":
        a = ca.LayerAttribution.interpolate(ca.LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True),
                                            (24, 24), "bilinear")[:, 0]
    elif name in ex.BY_NAME and ex.BY_NAME[name].library == "grad-cam":
        cls = getattr(gc, ex.BY_NAME[name].library_class)
        kw = {"ablation_layer": AblationLayer(), "batch_size": 8} if name == "ablationcam" else {}
        cam = cls(model, [] if name == "fullgrad" else [layer], **kw)
        if name == "scorecam":
            cam.batch_size = 8
        return cam(x.clone().requires_grad_(name not in ("eigencam", "scorecam", "ablationcam")),
                   [ClassifierOutputTarget(t)])[0]
    else:
        calls = {
            "saliency": lambda: ca.Saliency(model).attribute(x, target=t, abs=True).amax(1),
            "input_x_gradient": lambda: ca.InputXGradient(model).attribute(x, target=t).sum(1),
            "integrated_gradients": lambda: ca.IntegratedGradients(model).attribute(
                x, baselines=0.0, target=t, n_steps=8, method="gausslegendre", internal_batch_size=3).sum(1),
            "deeplift": lambda: ca.DeepLift(model).attribute(x, baselines=0.0, target=t).sum(1),
            "deeplift_shap": lambda: ca.DeepLiftShap(model).attribute(x, baselines=refs, target=t).sum(1),
            "gradient_shap": lambda: ca.GradientShap(model).attribute(x, baselines=refs, n_samples=8, stdevs=0.0,
                                                                      target=t).sum(1),
            "guided_backprop": lambda: ca.GuidedBackprop(model).attribute(x, target=t).abs().amax(1),
            "deconvolution": lambda: ca.Deconvolution(model).attribute(x, target=t).abs().amax(1),
            "guided_gradcam": lambda: ca.GuidedGradCam(model, layer).attribute(
                x, target=t, interpolate_mode="bilinear").abs().amax(1),
            "occlusion": lambda: ca.Occlusion(probs).attribute(
                x, sliding_window_shapes=(3, 6, 6), strides=(3, 3, 3), baselines=0.0, target=t,
                perturbations_per_eval=10)[:, 0],
            "feature_ablation": lambda: ca.FeatureAblation(probs).attribute(
                x, baselines=0.0, target=t, feature_mask=superpixels(x, 8), perturbations_per_eval=4)[:, 0],
            "shapley": lambda: ca.ShapleyValueSampling(probs).attribute(
                x, baselines=0.0, target=t, feature_mask=superpixels(x, 8), n_samples=3,
                perturbations_per_eval=4)[:, 0],
            "lrp": lambda: ca.LRP(copy.deepcopy(model)).attribute(x, target=t).sum(1),
        }
        with seeded(0, x.device):
            a = calls[name]()
    return a[0].detach().numpy()


def test_the_catalogue_is_one_table_with_every_family():
    assert len(ex.METHODS) == len(set(ex.METHODS)) == len(ex.CATALOGUE)
    assert {m.family for m in ex.CATALOGUE} == set(ex.FAMILIES)
    for old in ("saliency", "integrated_gradients", "smoothgrad", "occlusion", "guided_backprop", "gradcam",
                "guided_gradcam", "cam"):
        assert old in ex.METHODS
    rows = ex.catalogue_rows()
    assert rows[0].keys() >= {"method", "family", "class", "baseline", "conv layer", "cost", "shows"}
    assert [m.name for ms in ex.by_family().values() for m in ms] == sorted(ex.METHODS, key=lambda n: (
        ex.FAMILIES.index(ex.BY_NAME[n].family), ex.METHODS.index(n)))
    assert ex.forward_passes("scorecam", channels=1280) == 1280
    assert ex.forward_passes("shapley", {"n_samples": 10, "n_segments": 20}) == 200


@pytest.mark.parametrize("method", ex.METHODS)
def test_every_method_runs_and_leaves_nothing_behind(net, method):
    model, x = net
    model.fc.bias.requires_grad_(False)
    try:
        before = [p.requires_grad for p in model.parameters()]
        exp = ex.explain(model, x, method, **OPTIONS.get(method, {}))
        assert exp.map.shape == (24, 24) and exp.map.dtype == np.float32 and np.isfinite(exp.map).all()
        assert exp.target == int(model(x).argmax())
        assert not hooks_left(model) and [p.requires_grad for p in model.parameters()] == before
        assert not model.training and all(p.grad is None for p in model.parameters())
    finally:
        model.fc.bias.requires_grad_(True)


@pytest.mark.parametrize("method", [m for m in ex.METHODS if m != "cam"])  # cam: ours, tested in test_explain
def test_dispatch_equals_the_library_called_directly(net, method):
    model, x = net
    t = int(model(x).argmax())
    ours = ex.explain(model, x, method, t, **OPTIONS.get(method, {})).map
    np.testing.assert_allclose(ours, direct(method, model, x, t), rtol=1e-4, atol=1e-6)
    assert not hooks_left(model)


@pytest.mark.slow
def test_deeplift_on_efficientnet_lite0_adds_up_to_the_change_in_the_score():
    """EfficientNet-Lite0 calls one ReLU6 module twice per block and clips above 6 often: its DeepLift map
    must still sum to f(x) - f(baseline) (it summed to 2.03 for a change of 0.92 before ReLU6's upper
    ReLU got an input tensor of its own)."""
    from cvdemo.models import create_model

    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", 1000, pretrained=True).eval()
    x = torch.rand(1, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        t = int(model(x).argmax())
        delta = float(model(x)[0, t] - model(torch.zeros_like(x))[0, t])
    exp = ex.explain(model, x, "deeplift", t, baseline=0.0)
    assert float(exp.map.sum()) == pytest.approx(delta, rel=1e-3, abs=1e-4)
    assert not hooks_left(model)


def test_relu6_and_silu_are_swapped_on_a_copy_with_the_same_outputs():
    from cvdemo.explain.activations import captum_ready

    torch.manual_seed(0)
    act = nn.ReLU6()
    model = nn.Sequential(nn.Conv2d(3, 4, 3), act, nn.Conv2d(4, 4, 3), act, nn.SiLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 3)).eval()
    x = torch.randn(1, 3, 12, 12) * 4
    for purpose in ("guided", "deeplift"):
        ready = captum_ready(model, purpose, x)
        assert ready is not model and isinstance(model[1], nn.ReLU6) and isinstance(model[4], nn.SiLU)
        torch.testing.assert_close(ready(x), model(x))
    # DeepLift on the swapped copy keeps its completeness: the map sums to the score's change from the baseline,
    # with a shared ReLU6 whose inputs pass 6 (x * 4 makes sure they do) and a SiLU right after it
    exp = ex.explain(model, x, "deeplift", 0, baseline=0.0)
    with torch.no_grad():
        delta = model(x)[0, 0] - model(torch.zeros_like(x))[0, 0]
    assert float(exp.map.sum()) == pytest.approx(float(delta), rel=1e-4, abs=1e-5)
    guided = ex.explain(model, x, "guided_backprop", 0)
    assert np.isfinite(guided.map).all() and not hooks_left(model)


def test_lrp_says_which_layers_it_cannot_handle(net):
    model, x = net
    silu = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SiLU(), nn.Flatten(), nn.Linear(4 * 22 * 22, 3))
    with pytest.raises(ModelError, match="no propagation rule for Flatten, SiLU"):
        ex.explain(silu, x, "lrp")


def test_baselines_black_blurred_noise(net):
    model, x = net
    for kind in ("black", "blurred", "noise", 0.5):
        exp = ex.explain(model, x, "integrated_gradients", n_steps=4, baseline=kind)
        assert np.isfinite(exp.map).all()
    with pytest.raises(ConfigError, match="baseline must be"):
        ex.explain(model, x, "deeplift", baseline="grey")


class KeywordBlockNet(nn.Module):
    """A block called with a keyword argument, as EfficientNet-Lite calls its blocks."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x, scale=1.0):
            return torch.relu(self.conv(x)) * scale

    def __init__(self):
        super().__init__()
        self.block = self.Block()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.block(x, scale=1.0).mean((2, 3)))


def test_ablation_cam_on_a_block_called_with_keywords_is_one_sentence():
    torch.manual_seed(0)
    model = KeywordBlockNet().eval()
    with pytest.raises(ModelError, match="Ablation-CAM cannot ablate block: the network calls it with more than one"):
        ex.explain(model, torch.randn(1, 3, 16, 16), "ablationcam", layer="block")
    assert hooks_left(model) == []
    assert ex.explain(model, torch.randn(1, 3, 16, 16), "ablationcam", layer="block.conv").map.shape == (16, 16)
