"""Faithfulness scores from the libraries beside our deletion / insertion: Captum's infidelity and
sensitivity_max, pytorch-grad-cam's ROAD; finite on a small CNN, exact where the answer is known."""

import numpy as np
import pytest
import torch
from nets import SmallCNN
from torch import nn

from cvdemo import explain as ex
from cvdemo.explain import metrics as fm


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return SmallCNN(4).eval(), torch.randn(1, 3, 24, 24)


def untouched(model: nn.Module) -> bool:
    hooks = any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())
    return not hooks and all(p.requires_grad for p in model.parameters()) and not model.training


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_infidelity_and_sensitivity_are_finite_and_reported_by_faithfulness(small, method):
    model, x = small
    exp = ex.explain(model, x, method)
    rng_before = torch.random.get_rng_state()
    f = ex.faithfulness(model, x, exp, steps=6, random_maps=1, infidelity_samples=8, sensitivity_samples=3,
                        road_percentiles=())
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # seeded on a forked generator
    assert np.isfinite(f.infidelity) and f.infidelity >= 0
    assert np.isfinite(f.sensitivity) and f.sensitivity >= 0
    assert f.road is None  # skipped: road_percentiles=()
    d = f.to_dict()
    assert d["infidelity"] == f.infidelity and d["sensitivity"] == f.sensitivity
    assert untouched(model)
    again = ex.faithfulness(model, x, exp, steps=6, random_maps=1, infidelity_samples=8, sensitivity_samples=3,
                            road_percentiles=())
    assert (again.infidelity, again.sensitivity) == (f.infidelity, f.sensitivity)  # reproducible


def test_a_bare_map_gets_infidelity_but_no_sensitivity(small):
    model, x = small
    exp = ex.explain(model, x, "saliency")
    f = ex.faithfulness(model, x, exp.map, exp.target, steps=4, random_maps=1, infidelity_samples=4,
                        road_percentiles=())
    assert np.isfinite(f.infidelity) and f.sensitivity is None  # the method is needed to run it again
    off = ex.faithfulness(model, x, exp, steps=4, random_maps=1, infidelity_samples=0, sensitivity_samples=0,
                          road_percentiles=())
    assert off.infidelity is None and off.sensitivity is None


def test_exact_map_of_a_linear_model_has_zero_infidelity_and_sensitivity():
    """f(x) = w . x on one channel: the map w predicts every change exactly, and its gradient never moves."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x = torch.randn(1, 1, 8, 8)
    w = model[1].weight[2].detach().reshape(8, 8).numpy()
    assert fm.infidelity_score(model, x, w, 2, samples=8) == pytest.approx(0.0, abs=1e-8)
    noise = np.random.default_rng(0).normal(size=(8, 8))
    assert fm.infidelity_score(model, x, noise, 2, samples=8) > 1e-3
    saliency = ex.explain(model, x, "saliency", target=2)  # |w| wherever x is
    np.testing.assert_allclose(saliency.map, np.abs(w), rtol=1e-5)
    assert fm.sensitivity_score(model, x, saliency, samples=3) == pytest.approx(0.0, abs=1e-6)


def test_road_is_finite_when_grad_cam_is_installed(small):
    pytest.importorskip("pytorch_grad_cam")
    model, x = small
    exp = ex.explain(model, x, "gradcam")
    f = ex.faithfulness(model, x, exp, steps=4, random_maps=1, infidelity_samples=0, sensitivity_samples=0,
                        road_percentiles=(30, 70))
    assert np.isfinite(f.road) and -1.0 <= f.road <= 1.0  # half a difference of probabilities
    assert untouched(model)
