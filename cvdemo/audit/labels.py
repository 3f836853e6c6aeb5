"""Likely wrong labels and outliers, scored by cleanlab on the frozen features.

Label issues: a linear head (scikit-learn LogisticRegression on standardised features) is cross-validated,
so every image gets predicted probabilities from a head that never saw it; cleanlab's `find_label_issues`
picks the likely wrong labels from those out-of-fold probabilities and `get_label_quality_scores` scores
every label. Outliers: cleanlab's `OutOfDistribution` scores each image by its distance to its k nearest
neighbours in feature space; an image is flagged by the rule Datalab uses for its outlier issues (average
neighbour distance above Q3 + (1/0.37037 - 1) x IQR of all images').
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from cvdemo.audit.findings import Finding, Item

__all__ = ["FOLDS", "OUTLIER_K", "OUTLIER_THRESHOLD", "out_of_fold_probs", "label_findings", "Neighbours",
           "outlier_scores", "outlier_findings"]

FOLDS = 5                  # cross-validation folds for the out-of-fold probabilities (fewer when a class is small)
OUTLIER_K = 10             # neighbours per image (cleanlab's default)
OUTLIER_THRESHOLD = 0.37037  # Datalab's default for feature-based outliers


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, int] | str:
    """(pred_probs float (N, K), folds used) from a cross-validated LogisticRegression, labels 0..K-1 all present;
    or a sentence saying why it cannot be done (a class with a single image)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(labels)
    folds = int(min(FOLDS, counts.min())) if len(counts) else 0
    if len(counts) < 2 or folds < 2:
        return "label check skipped: every class needs at least 2 images for cross-validation"
    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))
    with warnings.catch_warnings():  # a not-quite-converged head still ranks labels well; say nothing
        warnings.simplefilter("ignore")
        probs = cross_val_predict(head, features, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                  method="predict_proba")
    return probs.astype(np.float64), folds


def label_findings(items: list[Item], labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> list[Finding]:
    """A `label_issue` finding per image cleanlab flags, scored 1 - its label quality."""
    from cleanlab.filter import find_label_issues  # type: ignore[import-untyped]
    from cleanlab.rank import get_label_quality_scores  # type: ignore[import-untyped]

    issues = find_label_issues(labels, probs, n_jobs=1)  # no process pool (the app runs in threads)
    quality = get_label_quality_scores(labels, probs)
    out = []
    for i in np.flatnonzero(issues):
        suggested = int(np.argmax(probs[i]))
        out.append(Finding("label_issue", float(1.0 - quality[i]), [items[i]],
                           f"labelled {classes[labels[i]]!r}, but a linear head that never saw it says "
                           f"{classes[suggested]!r} ({probs[i, suggested]:.0%}; {probs[i, labels[i]]:.0%} for its label)",
                           suggested=classes[suggested]))
    return out


@dataclass
class Neighbours:
    """Each image's k nearest other images in feature space: cosine distances and indices, (N, k) each."""
    distances: np.ndarray
    indices: np.ndarray


def outlier_scores(features: np.ndarray) -> tuple[np.ndarray, Neighbours]:
    """cleanlab's OutOfDistribution scores (N,) in [0, 1], low = atypical, and the neighbours it found (its
    fitted scikit-learn NearestNeighbors, cosine metric, asked once more for the near-duplicate check)."""
    from cleanlab.outlier import OutOfDistribution  # type: ignore[import-untyped]

    k = max(1, min(OUTLIER_K, len(features) - 1))
    ood = OutOfDistribution(params={"k": k})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = ood.fit_score(features=features, verbose=False)
    knn = ood.params["knn"]
    distances, indices = knn.kneighbors()  # without X: each image's neighbours other than itself
    return np.asarray(scores), Neighbours(np.asarray(distances), np.asarray(indices))


def outlier_findings(items: list[Item], scores: np.ndarray, neighbours: Neighbours) -> list[Finding]:
    """An `outlier` finding per image whose average neighbour distance passes Datalab's rule, scored 1 - score."""
    avg = neighbours.distances.mean(axis=1)
    if len(avg) < 4:
        return []
    q1, q3 = np.percentile(avg, [25, 75])
    limit = q3 + (1 / OUTLIER_THRESHOLD - 1) * (q3 - q1)
    return [Finding("outlier", float(1.0 - scores[i]), [items[i]],
                    f"far from every other image (average cosine distance to its {neighbours.distances.shape[1]} "
                    f"nearest: {avg[i]:.2f}, the limit {limit:.2f})")
            for i in np.flatnonzero(avg > limit)]
