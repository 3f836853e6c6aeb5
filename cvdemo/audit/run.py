"""`audit`: every check of a data set in one call, from the source name to an AuditReport.

    report = audit("photos.zip")                    # efficientnet_lite0 features, pretrained, offline
    report.summary()                                # {"exact_duplicate": 1, "label_issue": 4, ...}
"""

from __future__ import annotations

import time

import numpy as np

from cvdemo.audit.duplicates import NEAR_THRESHOLD, exact_groups, group_finding, near_groups
from cvdemo.audit.features import AuditData, load_audit_data
from cvdemo.audit.findings import AuditReport
from cvdemo.audit.images import balance_findings, image_findings, unreadable_findings
from cvdemo.audit.labels import label_findings, out_of_fold_probs, outlier_findings, outlier_scores
from cvdemo.errors import DataError

__all__ = ["audit", "analyse"]


def audit(source: str, *, model: str = "efficientnet_lite0", image_size: int | None = None,
          limit: int | None = None, near_threshold: float = NEAR_THRESHOLD, seed: int = 0,
          val_fraction: float = 0.1, test_fraction: float = 0.2, device: str = "auto") -> AuditReport:
    """Audit `source` (anything `train` accepts) with the frozen pretrained `model`'s features at `image_size`
    (default: the model's); splits as `train` makes them with `seed` and the fractions; `limit` caps each split
    as --limit-train / --limit-test do. `near_threshold`: cosine similarity (0-1] from which two images are near
    duplicates. Raises DataError / ModelError (one sentence) for bad input."""
    if not 0.0 < near_threshold <= 1.0:
        raise DataError(f"the near-duplicate threshold is a cosine similarity above 0 and at most 1, "
                        f"got {near_threshold}")
    started = time.perf_counter()
    data = load_audit_data(str(source), model=model, image_size=image_size, limit=limit, seed=seed,
                           val_fraction=val_fraction, test_fraction=test_fraction, device=device)
    report = analyse(data, near_threshold=near_threshold, seed=seed)
    report.split_settings = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
                             "limit": limit}
    report.seconds["total"] = time.perf_counter() - started
    return report


def analyse(data: AuditData, *, near_threshold: float = NEAR_THRESHOLD, seed: int = 0) -> AuditReport:
    """Every finding from data already loaded and featurised (see `load_audit_data`)."""
    return _analyse(data, near_threshold, seed)


def _analyse(data: AuditData, near_threshold: float, seed: int) -> AuditReport:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    clock = time.perf_counter()
    report = AuditReport(data.source, data.model, data.image_size, near_threshold, data.classes, data.counts,
                         images=len(data.items), seconds=dict(data.seconds), bundle=data.bundle)
    items, labels = data.items, data.labels
    report.findings += unreadable_findings(data.skipped)
    report.findings += image_findings(items, data.stats, data.facts, colour=data.channels == 3)
    report.findings += balance_findings(data.classes, data.counts)
    exact = exact_groups(data.digests)
    for group in exact:
        f = group_finding("exact_duplicate", group, items, labels, 1.0, f"{len(group)} identical files"
                          if data.facts and data.facts[0] is not None else f"{len(group)} identical images")
        f.score = 1.0 if f.leakage or f.conflicting else 0.9
        report.findings.append(f)
    if len(items) >= 3:
        scores, neighbours = outlier_scores(data.features)
        for group, similarity in near_groups(neighbours.distances, neighbours.indices, near_threshold, exact):
            report.findings.append(group_finding("near_duplicate", group, items, labels, similarity,
                                                 f"{len(group)} images alike (cosine similarity {similarity:.3f})"))
        report.findings += outlier_findings(items, scores, neighbours)
    else:
        report.notes.append("near-duplicate and outlier checks skipped: they need at least 3 images")
    report.seconds["neighbours"] = time.perf_counter() - clock
    clock = time.perf_counter()
    present, dense = np.unique(labels, return_inverse=True)
    # One BLAS / OpenMP thread for the cross-validated head: with torch loaded (its libgomp beside scipy's
    # OpenBLAS and scikit-learn's libgomp) their threads spin against each other, and it took 28-48 s instead
    # of 0.7 s for 600 images on 2 cores (measured). The neighbour search above keeps every thread: it is one
    # large matrix product per query, 14-18 s with 2 threads against 23-24 s with 1 for 20,000 x 1,280 features.
    with threadpool_limits(1):
        fitted = out_of_fold_probs(data.features, dense.reshape(-1), seed) if len(labels) else "no images"
    if isinstance(fitted, str):
        report.notes.append(fitted)
    else:
        probs, _folds = fitted
        report.findings += label_findings(items, dense.reshape(-1), probs, [data.classes[c] for c in present])
    report.seconds["labels"] = time.perf_counter() - clock
    return report
