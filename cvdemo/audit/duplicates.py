"""Exact duplicates (the same content hash) and near duplicates (frozen features whose cosine similarity is at
least `near_threshold`), grouped, each group marked when it crosses splits (leakage) or mixes labels.

The neighbours come from one scikit-learn NearestNeighbors (cosine metric) fitted on the features; the
outlier check (cvdemo.audit.labels) scores with the same fitted object, so the data is indexed once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from cvdemo.audit.findings import Finding, Item

__all__ = ["NEAR_THRESHOLD", "exact_groups", "near_groups", "group_finding"]

# Cosine similarity of efficientnet_lite0 penultimate features from which two images count as near duplicates.
# Measured: a CIFAR-10 photo and its JPEG re-encoded copy 0.96-0.98, and after also resizing it 0.84-0.98
# (depends on the sizes); 40 different cat photos at most 0.57-0.69 to each other; the textured test
# pictures (tests/audit_data.py) 0.93-0.96 to their resized JPEG copies and at most 0.85 to each other.
NEAR_THRESHOLD = 0.90


def exact_groups(digests: Sequence[str]) -> list[list[int]]:
    """Indices sharing a content hash, in groups of two or more (in index order)."""
    by_digest: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(digests):
        if not d.startswith("unreadable:"):
            by_digest[d].append(i)
    return [g for g in by_digest.values() if len(g) > 1]


def near_groups(distances: np.ndarray, neighbours: np.ndarray, threshold: float,
                exact: list[list[int]]) -> list[tuple[list[int], float]]:
    """Connected groups of images joined by a neighbour pair with cosine similarity >= `threshold`, with the
    highest similarity inside each group; groups made only of one exact-duplicate group are left out (they
    are reported as exact duplicates).

    `distances`, `neighbours`: (N, k) cosine distances and indices of each image's k nearest other images.
    """
    n = len(distances)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    best = np.zeros(n)
    close = np.argwhere(1.0 - distances >= threshold)
    for i, j in close:
        a, b = int(i), int(neighbours[i, j])
        sim = 1.0 - float(distances[i, j])
        best[a] = max(best[a], sim)
        best[b] = max(best[b], sim)
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        if best[i] > 0:
            members[root(i)].append(i)
    exact_sets = [set(g) for g in exact]
    out = []
    for group in members.values():
        if len(group) < 2 or any(set(group) <= s for s in exact_sets):
            continue
        out.append((sorted(group), float(min(1.0, max(best[i] for i in group)))))
    return out


def group_finding(kind: str, group: list[int], items: list[Item], labels: np.ndarray, score: float,
                  what: str) -> Finding:
    """A duplicate-group finding: train images first, and leakage / conflicting labels worked out."""
    order = sorted(group, key=lambda i: ({"train": 0, "val": 1, "test": 2}.get(items[i].split or "", 3), i))
    splits = {items[i].split for i in order}
    leakage = "train" in splits and bool(splits & {"val", "test"})
    names = sorted({items[i].label or "" for i in order})
    conflicting = len(set(labels[order].tolist())) > 1
    parts = [what]
    if leakage:
        parts.append(f"in {' and '.join(s for s in ('train', 'val', 'test') if s in splits)}: a held-out image "
                     "was also trained on, so the test number is optimistic")
    if conflicting:
        parts.append(f"labelled differently ({', '.join(names)})")
    return Finding(kind, score, [items[i] for i in order], "; ".join(parts), leakage=leakage, conflicting=conflicting)
