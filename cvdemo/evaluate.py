"""Evaluate a run: predictions once, then every metric from them.

    result = evaluate_run(run_dir, split="test")      # computes or reuses analysis/predictions-test-best.npz
    result.top1, result.macro_f1, result.per_class[3], result.confusion, result.ece
    idx = samples_in_cell(result, true=3, pred=5)     # test images of class 3 predicted as 5, surest first
    images = result.images(idx)                       # uint8 (n, C, H, W), as stored in the data set

One pass of the model over a split stores logits, probabilities, labels and the
penultimate-layer features (the input of the linear head) in the run folder, in a
`.npz` file read with `allow_pickle=False`, written atomically, and keyed by the split
and a digest of the checkpoint: a later call with the same checkpoint reuses it, a new
checkpoint recomputes it. Every metric then comes from those arrays: the confusion matrix,
precision / recall / F1 and top-k from scikit-learn (imported inside `metrics` and `topk_accuracy`,
since importing sklearn.metrics takes ~1.5 s and commands that only predict should not pay it);
the loss, expected calibration error, reliability bins and most-confidently-wrong samples, which
scikit-learn does not have in this form, in numpy here.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from cvdemo.checkpoint import checkpoint_path, load_checkpoint
from cvdemo.config import RunConfig
from cvdemo.errors import CheckpointError, ConfigError
from cvdemo.runs import write_atomic

if TYPE_CHECKING:  # torch and the data layer load only when images or predictions are needed
    import torch

    from cvdemo.data import DataBundle, ImageSet

SPLITS = ("test", "val", "train")
CACHE_FORMAT = "cvdemo-predictions/1"
ECE_BINS = 15


# -- stored predictions --------------------------------------------------------------------------

@dataclass
class Predictions:
    """The model's outputs on every image of one split, in the split's order."""

    split: str                      # "test", "val" or "train"
    checkpoint: str                 # "best" or "last": the checkpoint file that produced them
    digest: str                     # sha256 of that checkpoint file (hex, 16 characters)
    classes: list[str]              # class names; index = label
    logits: np.ndarray              # float32 (N, K)
    probs: np.ndarray               # float32 (N, K), softmax of the logits (rows sum to 1)
    labels: np.ndarray              # int64 (N,), true class indices
    features: np.ndarray | None     # float32 (N, D): input of the linear head, or None if not stored

    @property
    def preds(self) -> np.ndarray:
        """int64 (N,): the predicted class (highest logit, ties to the lowest index) of each sample. From the
        logits, not the probabilities: a saturated softmax rounds distinct logits to equal probabilities."""
        return self.logits.argmax(axis=1).astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's sha256: names the exact weights that made a prediction."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def cache_path(run_dir: Path, split: str, checkpoint: str) -> Path:
    return Path(run_dir) / "analysis" / f"predictions-{split}-{checkpoint}.npz"


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    return split


def predict_split(run_dir: str | Path, split: str = "test", checkpoint: str = "best", *,
                  features: bool = True, refresh: bool = False, batch_size: int = 256,
                  device: str = "auto") -> Predictions:
    """The run's predictions on a split: read from the run folder when the checkpoint is unchanged,
    otherwise computed with one pass over the split and stored (atomically) for next time.

    A read-only run folder is fine: the predictions are then computed and not stored.
    """
    run_dir = Path(run_dir)
    check_split(split)
    ckpt_file, checkpoint = checkpoint_path(run_dir, checkpoint)
    digest = file_digest(ckpt_file)
    path = cache_path(run_dir, split, checkpoint)
    if not refresh:
        cached = _read_cache(path)
        if cached is not None and cached.digest == digest and (cached.features is not None or not features):
            return cached
    pred = _compute(run_dir, split, ckpt_file, checkpoint, digest, features=features, batch_size=batch_size,
                    device=device)
    try:
        path.parent.mkdir(exist_ok=True)
        _write_cache(path, pred)
    except OSError:
        pass  # a read-only run folder: the predictions are still good, just not kept
    return pred


def _compute(run_dir: Path, split: str, ckpt_file: Path, checkpoint: str, digest: str, *, features: bool,
             batch_size: int, device: str) -> Predictions:
    from cvdemo.models.features import extract_features  # torch: only when predictions are computed
    from cvdemo.predict import Classifier

    ckpt = load_checkpoint(ckpt_file)
    clf = Classifier.from_checkpoint(ckpt, str(run_dir))
    images, classes = load_split(run_dir, split)
    if list(classes) != list(clf.classes):
        raise CheckpointError(f"the classes of run {run_dir.name}'s data no longer match its checkpoint; "
                              "was the data folder changed after training?")
    # one pass: the logits and, captured on the way, the head's input (the penultimate features)
    feats, logits = extract_features(clf, images, arch=ckpt.get("model"), batch_size=batch_size, device=device)
    if not len(logits):
        logits = np.zeros((0, len(classes)), np.float32)
    labels = images.labels.numpy().astype(np.int64)
    return Predictions(split, checkpoint, digest, list(classes), logits.astype(np.float32),
                       softmax(logits).astype(np.float32), labels, feats if features else None)


def _write_cache(path: Path, pred: Predictions) -> None:
    meta = {"format": CACHE_FORMAT, "split": pred.split, "checkpoint": pred.checkpoint, "digest": pred.digest,
            "classes": pred.classes}
    arrays = {"meta": np.array(json.dumps(meta)), "logits": pred.logits, "probs": pred.probs, "labels": pred.labels}
    if pred.features is not None:
        arrays["features"] = pred.features
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)  # plain arrays only: _read_cache loads with allow_pickle=False
    write_atomic(path, buf.getvalue())


def _read_cache(path: Path) -> Predictions | None:
    """The stored predictions, or None when absent, damaged or of another format (then they are recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != CACHE_FORMAT:
                return None
            return Predictions(meta["split"], meta["checkpoint"], meta["digest"], list(meta["classes"]),
                               z["logits"], z["probs"], z["labels"].astype(np.int64),
                               z["features"] if "features" in z.files else None)
    except (OSError, ValueError, KeyError, json.JSONDecodeError, EOFError):
        return None


@functools.lru_cache(maxsize=2)
def _load_bundle(run_dir: str, config_stamp: int) -> DataBundle:
    from cvdemo.train.setup import load_data  # torch: only when images are needed

    return load_data(RunConfig.from_json_file(Path(run_dir) / "config.json"))


def load_split(run_dir: str | Path, split: str) -> tuple[ImageSet, list[str]]:
    """(ImageSet, classes) of one split, exactly as the run trained and tested on it (kept for reuse)."""
    run_dir = Path(run_dir).resolve()
    config = run_dir / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{run_dir} is not a run folder (it has no config.json)")
    bundle = _load_bundle(str(run_dir), config.stat().st_mtime_ns)
    return getattr(bundle, check_split(split)), list(bundle.classes)


def sample_images(run_dir: str | Path, split: str, indices: Iterable[int] | np.ndarray) -> torch.Tensor:
    """uint8 (n, C, H, W) images of the given sample indices of a split (as stored, before resizing)."""
    import torch

    images, _ = load_split(run_dir, split)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) and (idx.min() < 0 or idx.max() >= len(images)):
        raise ConfigError(f"sample indices must lie in 0..{len(images) - 1} for the {split} split")
    if len(idx) == 0:
        return torch.zeros((0, images.channels, 1, 1), dtype=torch.uint8)
    return torch.stack([images[int(i)][0] for i in idx])


def sample_files(run_dir: str | Path, split: str, indices: Iterable[int] | np.ndarray) -> list[str] | None:
    """The file names (inside the run's folder or zip) of the given sample indices of a split, as
    `data.exclude` knows them; None for data that has no files (the built-in and torchvision sets)."""
    images, _ = load_split(run_dir, split)
    if images.names is None:
        return None
    return [images.names[int(i)] for i in np.asarray(indices, dtype=np.int64).reshape(-1)]


# -- metrics ---------------------------------------------------------------------------------------

def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (N, K) -> (N, K)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of the true classes under softmax(logits): the product's "loss".

    Kept in numpy (log-sum-exp of the logits) rather than sklearn.metrics.log_loss on purpose: it is the
    same figure as the training loss the curves show (torch's cross_entropy on logits, unclipped).
    log_loss sees only probabilities and clips them (at the dtype's eps), so a true class given logit -50
    scores about 36 nats there instead of its true ~50: the evaluated loss would no longer match training.
    """
    z = np.asarray(logits, dtype=np.float64)
    if len(z) == 0:
        return float("nan")
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(z)), labels]))


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 2, 3, 4, 5)) -> dict[int, float]:
    """{k: fraction of samples whose true class is among the k highest scores} (scikit-learn's figures).

    Top-1 is the accuracy of the predicted class (argmax, ties to the lowest index), so it always equals
    the confusion matrix's diagonal; k >= the number of classes is 1.0 (every class is in the top k).
    """
    from sklearn.metrics import accuracy_score, top_k_accuracy_score  # ~1.5 s import: only when scoring

    n, num_classes = scores.shape
    if n == 0:
        return {k: float("nan") for k in ks}
    out = {}
    for k in ks:
        if k >= num_classes:
            out[k] = 1.0
        elif k == 1:
            out[k] = float(accuracy_score(labels, scores.argmax(axis=1)))
        else:  # 1 < k < num_classes, so at least 3 classes: the multiclass form of top_k_accuracy_score
            out[k] = float(top_k_accuracy_score(labels, scores, k=k, labels=np.arange(num_classes)))
    return out


class ReliabilityBin(TypedDict):
    """One bin (lower, upper] of a reliability diagram; accuracy and confidence are None when it is empty."""

    lower: float
    upper: float
    count: int
    accuracy: float | None     # fraction of the bin's samples classified right
    confidence: float | None   # mean top probability of the bin's samples


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[ReliabilityBin]]:
    """Expected calibration error and the reliability-diagram bins.

    Confidence is the top probability; bins are `bins` equal-width intervals (lo, hi] of [0, 1].
    ECE = sum over bins of (bin size / N) * |accuracy in bin - mean confidence in bin|.
    Each bin: {"lower", "upper", "count", "accuracy", "confidence"} (accuracy/confidence None when empty).
    """
    conf = probs.max(axis=1).astype(np.float64)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    n = max(len(labels), 1)
    ece = float(np.sum(np.abs(acc_sum - conf_sum)) / n) if len(labels) else float("nan")
    table: list[ReliabilityBin] = []
    for b in range(bins):
        c = int(count[b])
        table.append({"lower": b / bins, "upper": (b + 1) / bins, "count": c,
                      "accuracy": float(acc_sum[b] / c) if c else None,
                      "confidence": float(conf_sum[b] / c) if c else None})
    return ece, table


def most_confident_wrong(probs: np.ndarray, labels: np.ndarray, n: int = 16) -> list[dict[str, Any]]:
    """Up to n misclassified samples, highest predicted probability first: {"index", "true", "pred", "confidence"}."""
    preds = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    wrong = np.flatnonzero(preds != labels)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    return [{"index": int(i), "true": int(labels[i]), "pred": int(preds[i]), "confidence": float(conf[i])}
            for i in order]


@dataclass
class Evaluation:
    """Every metric of one run on one split, derived from its stored predictions.

    Accuracies and F1 are fractions in [0, 1]; `loss` is mean cross-entropy in nats.
    """

    predictions: Predictions
    run_dir: Path | None
    loss: float
    topk: dict[int, float]                  # {1: top-1, ..., 5: top-5}
    macro_f1: float                         # mean F1 over the classes present in the labels or predictions
    weighted_f1: float                      # F1 averaged with weights = support
    per_class: list[dict[str, Any]]         # {"class", "index", "precision", "recall", "f1", "support", "accuracy"}
    confusion: np.ndarray                   # int64 (K, K), rows = true class, columns = predicted class
    confusion_normalized: np.ndarray        # float (K, K), each row divided by its support (empty rows stay 0)
    most_wrong: list[dict[str, Any]]        # most confidently wrong samples, surest first
    ece: float                              # expected calibration error, 15 bins
    reliability: list[ReliabilityBin]       # the 15 reliability-diagram bins

    @property
    def top1(self) -> float:
        return self.topk[1]

    @property
    def top5(self) -> float:
        return self.topk[5]

    @property
    def classes(self) -> list[str]:
        return self.predictions.classes

    @property
    def n(self) -> int:
        return len(self.predictions)

    def images(self, indices: Iterable[int] | np.ndarray) -> torch.Tensor:
        """uint8 (n, C, H, W) images of the given sample indices of this split."""
        if self.run_dir is None:
            raise ConfigError("these predictions did not come from a run folder, so their images are unknown")
        return sample_images(self.run_dir, self.predictions.split, indices)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures (the `cvdemo evaluate --json` payload)."""
        names = self.classes
        return {
            "split": self.predictions.split, "checkpoint": self.predictions.checkpoint, "n": self.n,
            "classes": names, "loss": self.loss, "top1": self.top1, "top5": self.top5,
            "topk": {str(k): v for k, v in self.topk.items()},
            "macro_f1": self.macro_f1, "weighted_f1": self.weighted_f1, "ece": self.ece,
            "per_class": self.per_class, "confusion": self.confusion.tolist(),
            "confusion_normalized": [[round(float(v), 6) for v in row] for row in self.confusion_normalized],
            "most_wrong": [{**w, "true_class": names[w["true"]], "pred_class": names[w["pred"]]}
                           for w in self.most_wrong],
            "reliability": self.reliability,
        }


def metrics(pred: Predictions, *, run_dir: str | Path | None = None, most_wrong: int = 16) -> Evaluation:
    """Every metric from stored predictions: scikit-learn's for the confusion matrix, precision, recall, F1
    and top-k; ours for the loss (see `cross_entropy`), ECE and the most confidently wrong samples.

    Every class counts, also one absent from this split or never predicted (its row or column is 0 and its
    undefined precision, recall or F1 is 0); the macro F1 averages the classes present in the labels or
    the predictions, as scikit-learn's f1_score does.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support  # ~1.5 s import

    k = len(pred.classes)
    labels, probs, preds = pred.labels, pred.probs, pred.preds
    classes = np.arange(k)
    if len(labels):
        cm = confusion_matrix(labels, preds, labels=classes).astype(np.int64)
        precision, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=classes,
                                                                         zero_division=0)
        macro = float(f1_score(labels, preds, average="macro", zero_division=0))
        weighted = float(f1_score(labels, preds, average="weighted", zero_division=0))
    else:  # scikit-learn refuses empty arrays: an empty split has no scores
        cm = np.zeros((k, k), np.int64)
        precision = recall = f1 = np.zeros(k)
        support = np.zeros(k, np.int64)
        macro = weighted = float("nan")
    rows = cm.sum(axis=1, keepdims=True)
    normalized = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    per_class = [{"class": pred.classes[c], "index": c, "precision": float(precision[c]),
                  "recall": float(recall[c]), "f1": float(f1[c]), "support": int(support[c]),
                  # per-class accuracy as the reports use it: the share of this class's images classified right
                  "accuracy": float(recall[c])}
                 for c in range(k)]
    ece, bins = calibration(probs, labels)
    return Evaluation(pred, Path(run_dir) if run_dir is not None else None, cross_entropy(pred.logits, labels),
                      topk_accuracy(pred.logits, labels), macro, weighted, per_class, cm, normalized,
                      most_confident_wrong(probs, labels, most_wrong), ece, bins)


def evaluate_run(run_dir: str | Path, split: str = "test", checkpoint: str = "best", *, refresh: bool = False,
                 most_wrong: int = 16, device: str = "auto") -> Evaluation:
    """Predictions of a run on a split (computed once, then reused) and every metric from them."""
    pred = predict_split(run_dir, split, checkpoint, refresh=refresh, device=device)
    return metrics(pred, run_dir=run_dir, most_wrong=most_wrong)


def samples_in_cell(result: Evaluation, true: int, pred: int) -> np.ndarray:
    """Sample indices (int64) of true class `true` predicted as `pred`, highest confidence first:
    the images behind one cell of the confusion matrix."""
    k = len(result.classes)
    for name, value in (("true", true), ("pred", pred)):
        if not 0 <= int(value) < k:
            raise ConfigError(f"{name} class index must lie in 0..{k - 1}, not {value}")
    p = result.predictions
    idx = np.flatnonzero((p.labels == true) & (p.preds == pred))
    return idx[np.argsort(-p.probs[idx, pred], kind="stable")]
