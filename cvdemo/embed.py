"""Embeddings: features from inside a network, projected to 2-D or 3-D with PCA or t-SNE.

    emb = embed_run(run_dir, method="tsne", dims=2, split="test", limit=1000)
    emb.coords            # float32 (N, 2)
    emb.to_csv("points.csv")                     # x, y, true, predicted, index

Features come from the penultimate layer (the input of the linear head) by default,
from any named layer (global-average-pooled when it is a 4-D feature map), or from the
logits. Hooks that read them are removed when the pass ends, error or not. Sample
selection is stratified with a fixed seed, so the same `limit` and `seed` pick the same
images for a fine-tuned run and for its pretrained backbone (`backbone="pretrained"`).

PCA is scikit-learn's (exact SVD, randomized with a fixed seed for large sets), with the
sign of each component fixed so results are reproducible. t-SNE runs openTSNE when it is
installed (about twice as fast as scikit-learn on 2 cores: `cvdemo bench embed`) and
scikit-learn's Barnes-Hut implementation otherwise, or whichever `backend=` names.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvdemo import evaluate as ev
from cvdemo import runs
from cvdemo.checkpoint import checkpoint_path
from cvdemo.config import RunConfig
from cvdemo.data import stratified_subset
from cvdemo.errors import ConfigError, ModelError
from cvdemo.models import create_model, get_spec, imagenet_classes
from cvdemo.models.features import extract_features
from cvdemo.predict import Classifier
from cvdemo.runs import write_atomic

METHODS = ("pca", "tsne")
TSNE_BACKENDS = ("auto", "sklearn", "opentsne")
PCA_BEFORE_TSNE = 50  # t-SNE sees at most this many PCA components: faster, and it denoises
# PCA switches from the exact SVD to the randomized one above this many samples: on 10,000 x 512
# features with a decaying spectrum (as a trained network's are) it took 1.2 s instead of 9.0 s on a
# busy 2-core machine, with the same explained-variance ratios to 6 digits.
RANDOMIZED_ABOVE = 5000


# -- projections ----------------------------------------------------------------------------------

@dataclass
class PCAResult:
    coords: np.ndarray               # float32 (N, dims): the samples in the principal axes
    explained_variance: np.ndarray   # float (dims,): fraction of the total variance on each axis
    components: np.ndarray           # float (dims, D): unit principal axes, largest variance first
    mean: np.ndarray                 # float (D,)


def pca(x: np.ndarray, dims: int = 2, *, seed: int = 0) -> PCAResult:
    """Principal component analysis of float (N, D) data onto `dims` axes (sklearn.decomposition.PCA).

    The exact ("full") SVD up to RANDOMIZED_ABOVE samples, the randomized one above (seeded by `seed`,
    so reproducible). Each axis's sign makes its largest-magnitude loading positive (scikit-learn's rule).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ConfigError("PCA needs at least 2 samples")
    n, d = x.shape
    dims = int(dims)
    if not 1 <= dims <= min(n, d):
        raise ConfigError(f"PCA to {dims} dimensions needs at least {dims} samples and features; "
                          f"got {n} samples of {d} features")
    from sklearn.decomposition import PCA  # ~1.8 s to import: only when projecting, not for every command

    solver = "randomized" if n > RANDOMIZED_ABOVE and dims < min(n, d) else "full"
    model = PCA(dims, svd_solver=solver, random_state=seed if solver == "randomized" else None)
    with np.errstate(invalid="ignore", divide="ignore"):  # constant features (a dead network): no variance
        coords = model.fit_transform(x)
    ratio = np.nan_to_num(model.explained_variance_ratio_)  # 0/0 there: no share of nothing, so 0
    return PCAResult(coords.astype(np.float32), ratio, model.components_, model.mean_)


def tsne(x: np.ndarray, dims: int = 2, *, perplexity: float = 30.0, seed: int = 0, backend: str = "auto",
         n_jobs: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """t-SNE of float (N, D) data to float32 (N, dims), and {"backend", "perplexity"} actually used.

    Data with more than 50 features is first reduced to 50 PCA components. The perplexity is
    capped at (N - 1) / 3 so small selections still work. backend "auto" = openTSNE when the
    package is installed (the faster: `cvdemo bench embed`), else scikit-learn; "opentsne" insists
    on openTSNE. `n_jobs` threads (default: up to 2).
    """
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    if dims not in (2, 3):
        raise ConfigError(f"t-SNE makes 2 or 3 dimensions, not {dims}")
    if n < 5:
        raise ConfigError(f"t-SNE needs at least 5 samples, got {n}")
    if backend not in TSNE_BACKENDS:
        raise ConfigError(f"t-SNE backend must be one of {', '.join(TSNE_BACKENDS)}, not {backend!r}")
    if not perplexity > 0:
        raise ConfigError(f"perplexity must be greater than 0, got {perplexity}")
    perplexity = float(min(perplexity, (n - 1) / 3))
    if x.shape[1] > PCA_BEFORE_TSNE:
        x = pca(x, min(PCA_BEFORE_TSNE, n), seed=seed).coords
    jobs = n_jobs or max(1, min(2, _cores()))
    OpenTSNE = _opentsne(required=backend == "opentsne") if backend in ("auto", "opentsne") else None
    if OpenTSNE is not None:
        # Barnes-Hut below 10,000 points (openTSNE's own rule; faster there than its FFT interpolation,
        # which is also very slow on a few dozen points) and always in 3-D, where FFT is not available.
        method = "fft" if dims == 2 and n >= 10_000 else "bh"
        y = OpenTSNE(n_components=dims, perplexity=perplexity, random_state=seed, n_jobs=jobs,
                     negative_gradient_method=method, verbose=False).fit(x)
        return np.asarray(y, dtype=np.float32), {"backend": "opentsne", "perplexity": perplexity}
    from sklearn.manifold import TSNE

    y = TSNE(n_components=dims, perplexity=perplexity, random_state=seed, init="pca", learning_rate="auto",
             n_jobs=jobs).fit_transform(x)
    return y.astype(np.float32), {"backend": "sklearn", "perplexity": perplexity}


def _opentsne(required: bool) -> type | None:
    """openTSNE's TSNE class, or None when the package is missing (ConfigError then if it is `required`)."""
    try:
        from openTSNE import TSNE
    except ImportError:
        if required:
            raise ConfigError("the openTSNE backend needs the openTSNE package: pip install openTSNE") from None
        return None
    return TSNE


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def knn_accuracy(coords: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour vote (ties -> smallest label) in `coords`:
    how well the classes separate in the picture, as a fraction in [0, 1] (NaN for <= k points)."""
    z = np.asarray(coords, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n = len(z)
    if n <= k:
        return float("nan")
    sq = (z * z).sum(axis=1)
    hits = 0
    num_classes = int(y.max()) + 1
    for lo in range(0, n, 1024):
        hi = min(n, lo + 1024)
        dist = sq[lo:hi, None] - 2 * z[lo:hi] @ z.T + sq[None, :]
        dist[np.arange(hi - lo), np.arange(lo, hi)] = np.inf
        nbrs = np.argpartition(dist, k, axis=1)[:, :k]
        votes = np.zeros((hi - lo, num_classes), np.int64)
        np.add.at(votes, (np.arange(hi - lo)[:, None].repeat(k, 1), y[nbrs]), 1)
        hits += int((votes.argmax(axis=1) == y[lo:hi]).sum())
    return hits / n


def select_samples(labels: np.ndarray, limit: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified subset of at most `limit` samples; the same for the same labels and seed."""
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    return stratified_subset(np.asarray(labels), None if limit is None else int(limit), seed)


# -- one call from a run to points ----------------------------------------------------------------

@dataclass
class Embedding:
    """Projected points of some samples of a split, with their classes."""

    coords: np.ndarray                  # float32 (N, dims)
    labels: np.ndarray                  # int64 (N,), true class indices
    preds: np.ndarray | None            # int64 (N,), predicted class indices into `pred_classes`
    indices: np.ndarray                 # int64 (N,), sample indices within the split
    classes: list[str]                  # names of the true classes
    pred_classes: list[str]             # names of the predicted classes (ImageNet's for a pretrained head)
    method: str                         # "pca" or "tsne"
    layer: str                          # "penultimate", "logits" or a dotted module path
    split: str
    backbone: str                       # "run" or "pretrained"
    features: int                       # D, the feature width before projection
    explained_variance: list[float] | None  # PCA: fraction of variance per axis
    tsne: dict[str, Any] | None         # t-SNE: {"backend", "perplexity", "seed"}
    knn5: float                         # leave-one-out 5-NN accuracy in the projection
    seconds: float                      # projection time

    @property
    def dims(self) -> int:
        return int(self.coords.shape[1])

    def rows(self) -> list[dict[str, Any]]:
        axes = "xyz"[: self.dims]
        out = []
        for i in range(len(self.labels)):
            row: dict[str, Any] = {a: float(self.coords[i, j]) for j, a in enumerate(axes)}
            row["true"] = self.classes[int(self.labels[i])]
            row["predicted"] = self.pred_classes[int(self.preds[i])] if self.preds is not None else ""
            row["index"] = int(self.indices[i])
            out.append(row)
        return out

    def to_csv(self, path: str | Path) -> Path:
        """Write x, y[, z], true, predicted, index (one row per sample) atomically."""
        buf = io.StringIO()
        fields = [*"xyz"[: self.dims], "true", "predicted", "index"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buf.getvalue().encode("utf-8"))
        return path

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "dims": self.dims, "layer": self.layer, "split": self.split,
                "backbone": self.backbone, "n": int(len(self.labels)), "features": self.features,
                "explained_variance": self.explained_variance, "tsne": self.tsne, "knn5": self.knn5,
                "seconds": self.seconds}


def project(features: np.ndarray, method: str = "pca", dims: int = 2, *, perplexity: float = 30.0, seed: int = 0,
            backend: str = "auto") -> tuple[np.ndarray, list[float] | None, dict[str, Any] | None]:
    """(coords float32 (N, dims), PCA explained variance or None, t-SNE settings or None)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if dims not in (2, 3):
        raise ConfigError(f"dims must be 2 or 3, not {dims}")
    if method == "pca":
        r = pca(features, dims, seed=seed)
        return r.coords, [float(v) for v in r.explained_variance], None
    coords, info = tsne(features, dims, perplexity=perplexity, seed=seed, backend=backend)
    return coords, None, {**info, "seed": seed}


def embed_run(run_dir: str | Path, *, method: str = "pca", dims: int = 2, layer: str | None = None,
              split: str = "test", limit: int | None = None, seed: int = 0, perplexity: float = 30.0,
              backbone: str = "run", checkpoint: str = "best", backend: str = "auto",
              device: str = "auto") -> Embedding:
    """Features of (a stratified `limit` of) a run's split, projected with PCA or t-SNE.

    `backbone="pretrained"` reads the features of the run's architecture with its ImageNet
    weights instead of the run's, from the same samples: what fine-tuning changed.
    """
    run_dir = runs.resolve_run(run_dir)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if dims not in (2, 3):
        raise ConfigError(f"dims must be 2 or 3, not {dims}")
    if backbone not in ("run", "pretrained"):
        raise ConfigError(f"backbone must be 'run' or 'pretrained', not {backbone!r}")
    ev.check_split(split)
    arch = RunConfig.from_json_file(run_dir / "config.json").model.name
    images, classes = ev.load_split(run_dir, split)
    idx = select_samples(images.labels.numpy(), limit, seed)
    labels = images.labels.numpy()[idx].astype(np.int64)
    layer_name = layer or "penultimate"
    pred_classes: list[str] | None = classes
    if backbone == "run" and layer in (None, "penultimate", "logits"):
        ckpt_file, which = checkpoint_path(run_dir, checkpoint)
        cached = ev._read_cache(ev.cache_path(run_dir, split, which))
        if limit is None or (cached is not None and cached.digest == ev.file_digest(ckpt_file)):
            pred = ev.predict_split(run_dir, split, which, device=device)  # features=True: never None here
            logits = pred.logits[idx]
            if layer == "logits":
                feats = logits
            else:
                assert pred.features is not None  # predict_split(features=True) always stores them
                feats = pred.features[idx]
        else:
            clf = Classifier.from_run(run_dir, which)
            feats, logits = extract_features(clf, images.subset(idx), layer=layer, arch=arch, device=device)
    elif backbone == "run":
        _, which = checkpoint_path(run_dir, checkpoint)
        clf = Classifier.from_run(run_dir, which)
        feats, logits = extract_features(clf, images.subset(idx), layer=layer, arch=arch, device=device)
    else:
        clf, pred_classes = pretrained_like(run_dir, arch, classes)
        feats, logits = extract_features(clf, images.subset(idx), layer=layer, arch=arch, device=device)
    preds = logits.argmax(axis=1).astype(np.int64) if pred_classes is not None and len(logits) else None
    if not np.isfinite(feats).all():
        raise ModelError("the features contain NaN or infinite values (a diverged run?); nothing to project")
    started = time.perf_counter()
    coords, variance, tsne_info = project(feats, method, dims, perplexity=perplexity, seed=seed, backend=backend)
    seconds = time.perf_counter() - started
    return Embedding(coords, labels, preds, idx.astype(np.int64), list(classes), list(pred_classes or []), method,
                     layer_name, split, backbone, int(feats.shape[1]), variance, tsne_info,
                     knn_accuracy(coords, labels), seconds)


def pretrained_like(run_dir: Path, arch: str, classes: list[str]) -> tuple[Classifier, list[str] | None]:
    """A Classifier with `arch`'s ImageNet weights that reads the run's images at the run's input size.

    Returns it with the names its predictions refer to (ImageNet's), or None when the pretrained
    weights have no ImageNet head (then its predictions mean nothing).
    """
    spec = get_spec(arch)
    if spec.pretrained is None:
        raise ModelError(f"{arch} has no pretrained weights to compare with; this view needs a run of a "
                         "pretrained architecture such as efficientnet_lite0 or resnet18")
    mean, std = spec.normalization
    run_clf = Classifier.from_run(run_dir)
    try:
        model, names = create_model(arch, None, pretrained=True), imagenet_classes()
    except ModelError:
        model, names = create_model(arch, len(classes), pretrained=True), None
    clf = Classifier(model.eval(), names or list(classes), run_clf.image_size, mean, std, 3, False,
                     f"{arch} (ImageNet)")
    return clf, names
