"""Embeddings: features through hooks that never stay behind, PCA equal to scikit-learn's, a t-SNE that
separates the digits a trained LeNet learned."""

import numpy as np
import pytest
import torch
from torch import nn

from cvdemo import embed
from cvdemo.models.features import capture


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


@pytest.mark.parametrize("shape", [(300, 20), (15, 40)])  # more samples than features, and fewer
def test_pca_equals_scikit_learn(shape):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1])) + 3.0
    ours = embed.pca(x, 3)
    ref = PCA(3, svd_solver="full").fit(x)
    np.testing.assert_allclose(ours.explained_variance, ref.explained_variance_ratio_, rtol=1e-6)
    theirs = ref.transform(x)
    for j in range(3):  # the same axes up to sign
        sign = np.sign(ours.coords[:, j] @ theirs[:, j])
        np.testing.assert_allclose(ours.coords[:, j], sign * theirs[:, j], rtol=1e-4, atol=1e-4)
    again = embed.pca(x, 3)
    np.testing.assert_array_equal(again.coords, ours.coords)  # signs are fixed, results reproducible


def test_pca_of_a_large_set_is_randomized_seeded_and_close_to_the_exact_one():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    n, d = embed.RANDOMIZED_ABOVE + 500, 16
    x = rng.normal(size=(n, d)) * (1.0 / np.arange(1, d + 1)) @ np.linalg.qr(rng.normal(size=(d, d)))[0]
    ours = embed.pca(x, 2)
    ref = PCA(2, svd_solver="randomized", random_state=0).fit(x)
    np.testing.assert_allclose(ours.coords, ref.transform(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(embed.pca(x, 2).coords, ours.coords)  # the fixed seed: reproducible
    exact = PCA(2, svd_solver="full").fit(x)
    np.testing.assert_allclose(ours.explained_variance, exact.explained_variance_ratio_, rtol=1e-4)


def test_pca_of_constant_features_has_zero_variance_not_nan():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = embed.pca(np.ones((10, 4)), 2)  # e.g. a dead network: every feature the same for every image
    assert (r.explained_variance == 0).all() and np.isfinite(r.coords).all()


def test_knn_accuracy_equals_scikit_learn_leave_one_out():
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 120)
    coords = rng.normal(size=(120, 2)) + labels[:, None] * 0.8
    ref = cross_val_score(KNeighborsClassifier(5), coords, labels, cv=LeaveOneOut()).mean()
    assert embed.knn_accuracy(coords, labels) == pytest.approx(ref)


@pytest.mark.slow
def test_tsne_of_trained_lenet_features_separates_the_digits(digits_run, tmp_path):
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    emb = embed.embed_run(digits_run, method="tsne", dims=2, split="test")
    assert emb.coords.shape == (360, 2) and np.isfinite(emb.coords).all()
    assert emb.layer == "penultimate" and emb.features == 84
    knn = cross_val_score(KNeighborsClassifier(5), emb.coords, emb.labels, cv=5).mean()
    assert knn >= 0.9, knn
    path = emb.to_csv(tmp_path / "points.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "x,y,true,predicted,index" and len(lines) == 361


def test_pca_of_a_named_layer_with_limit_picks_stratified_samples(digits_run):
    a = embed.embed_run(digits_run, method="pca", dims=3, layer="features", limit=50, seed=1)
    b = embed.embed_run(digits_run, method="pca", dims=3, layer="logits", limit=50, seed=1)
    assert a.coords.shape == (50, 3) and a.features == 16  # LeNet's last feature map has 16 channels, pooled
    assert b.features == 10
    np.testing.assert_array_equal(a.indices, b.indices)  # same seed, same samples, whatever the layer
    assert np.bincount(a.labels).tolist() == [5] * 10  # stratified
    assert len(a.explained_variance) == 3 and 0 < sum(a.explained_variance) <= 1 + 1e-9
    c = embed.embed_run(digits_run, method="pca", limit=50, seed=2)
    assert not np.array_equal(a.indices, c.indices)


def test_hooks_are_removed_even_when_the_forward_pass_fails():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    with pytest.raises(RuntimeError), capture(model[3], "input"):
        model(torch.zeros(1, 1, 5, 5))  # wrong size: the linear layer fails
    assert no_hooks(model)
    with capture(model[0]) as seen:
        model(torch.zeros(2, 1, 8, 8))
    assert seen[0].shape == (2, 4, 6, 6) and no_hooks(model)


def test_unknown_layer_and_bad_settings_are_user_errors(digits_run):
    from cvdemo.errors import CvdemoError

    with pytest.raises(CvdemoError, match="no layer 'nope'"):
        embed.embed_run(digits_run, layer="nope", limit=20)
    with pytest.raises(CvdemoError, match="method must be one of"):
        embed.embed_run(digits_run, method="umap")
    with pytest.raises(CvdemoError, match="no pretrained weights"):
        embed.embed_run(digits_run, backbone="pretrained", limit=20)
    with pytest.raises(CvdemoError, match="at least 5 samples"):
        embed.tsne(np.zeros((3, 4)))


def test_pretrained_backbone_reads_the_same_samples(tmp_path):
    """A fine-tuned efficientnet_lite0 run (weights perturbed instead of trained, to keep the test short)
    against its ImageNet backbone: same samples, different features."""
    from cvdemo import runs
    from cvdemo.checkpoint import save_checkpoint
    from cvdemo.config import RunConfig
    from cvdemo.models import create_model

    cfg = RunConfig().replace(model={"name": "efficientnet_lite0", "pretrained": True},
                              data={"image_size": 32})
    run = runs.create_run(tmp_path, cfg)
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", 10, pretrained=True)
    with torch.no_grad():
        model._conv_head.weight.mul_(1.5)
    save_checkpoint(run / "best.pt", {
        "model": "efficientnet_lite0", "num_classes": 10, "classes": [str(i) for i in range(10)],
        "in_channels": 3, "image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "model_kwargs": {},
        "state_dict": model.state_dict(), "epoch": 0})
    tuned = embed.embed_run(run, method="pca", limit=30)
    base = embed.embed_run(run, method="pca", limit=30, backbone="pretrained")
    np.testing.assert_array_equal(tuned.indices, base.indices)
    assert tuned.features == base.features == 1280
    assert base.backbone == "pretrained" and len(base.pred_classes) == 1000  # ImageNet's head predicts
    assert not np.allclose(tuned.coords, base.coords)


def test_tsne_falls_back_to_scikit_learn_without_opentsne(monkeypatch):
    import sys

    x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    monkeypatch.setitem(sys.modules, "openTSNE", None)  # as if it were not installed
    coords, info = embed.tsne(x, perplexity=5)
    assert info["backend"] == "sklearn" and coords.shape == (40, 2)
    with pytest.raises(embed.ConfigError, match="pip install openTSNE"):
        embed.tsne(x, backend="opentsne")
