"""Stratified splits and subsets, without scikit-learn.

`stratified_split` cuts a labelled pool into parts whose class proportions follow the
pool's: used for the digits split, for carving validation data out of a training set,
for flat image folders and for `limit_train` / `limit_test`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def stratified_split(labels: np.ndarray | torch.Tensor | Sequence[int], sizes: Sequence[float] | Sequence[int]
                     | float | int, seed: int = 0, *, keep_rest: bool = True) -> list[np.ndarray]:
    """Split indices 0..N-1 into `len(sizes) + 1` stratified parts; the last part is the rest.

    `sizes` are either fractions of N (floats, summing to at most 1) or counts (ints, capped at what
    is available). Part totals are exact (largest remainder), each class is shared out in proportion
    to its size, and every class gets at least one index in every part when that is possible
    (with `keep_rest=False` the rest part is not promised one). Within a class the members are
    shuffled with `numpy.random.default_rng(seed)`, so the result depends only on the labels, the
    sizes and the seed. Returns sorted int64 index arrays.
    """
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    y = y.reshape(-1)
    n = len(y)
    if isinstance(sizes, (int, float, np.integer, np.floating)):
        sizes = [sizes]
    sizes = list(sizes)
    targets = _targets(sizes, n)
    if n == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(len(targets) + 1)]
    classes, inverse = np.unique(y, return_inverse=True)
    inverse = inverse.reshape(-1)
    avail = np.bincount(inverse, minlength=len(classes)).astype(np.int64)
    rng = np.random.default_rng(seed)
    members = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
    tie = rng.random(len(classes))

    rest_wants = keep_rest and n - sum(targets) > 0
    allocations = []
    for j, target in enumerate(targets):
        later = sum(1 for t in targets[j + 1:] if t > 0) + int(rest_wants)  # parts still to serve
        x = _allocate(avail, target, later, tie)
        allocations.append(x)
        avail = avail - x

    parts: list[list[np.ndarray]] = [[] for _ in range(len(targets) + 1)]
    for c, idx in enumerate(members):
        start = 0
        for j, x in enumerate(allocations):
            parts[j].append(idx[start:start + x[c]])
            start += int(x[c])
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def stratified_subset(labels: np.ndarray | torch.Tensor | Sequence[int], count: int | None,
                      seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified subset of exactly min(count, N) items (all of them when count is None)."""
    n = len(labels)
    if count is None or count >= n:
        return np.arange(n, dtype=np.int64)
    return stratified_split(labels, [int(count)], seed, keep_rest=False)[0]


def _targets(sizes: list, n: int) -> list[int]:
    """Exact part totals from fractions (largest remainder, the rest included) or from counts."""
    if all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
        wanted = [int(s) for s in sizes]
        if any(c < 0 for c in wanted):
            raise ValueError(f"split counts must not be negative, got {wanted}")
        out, left = [], n
        for c in wanted:
            out.append(min(c, left))
            left -= out[-1]
        return out
    fractions = [float(s) for s in sizes]
    if any(not 0.0 <= f <= 1.0 for f in fractions) or sum(fractions) > 1.0 + 1e-9:
        raise ValueError(f"split fractions must lie in [0, 1] and sum to at most 1, got {fractions}")
    quotas = np.array([*fractions, max(0.0, 1.0 - sum(fractions))]) * n
    counts = np.floor(quotas + 1e-9).astype(np.int64)
    short = n - int(counts.sum())
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[:short]] += 1
    return [int(c) for c in counts[:-1]]


def _allocate(avail: np.ndarray, target: int, later: int, tie: np.ndarray) -> np.ndarray:
    """How many of each class go into a part of `target` items, proportional to `avail`.

    `later` parts still to come would also like one item of each class, so when possible a class
    keeps `later` items back; and when possible every class gives at least one item here.
    """
    total = int(avail.sum())
    target = min(target, total)
    x = np.zeros_like(avail)
    if target == 0:
        return x
    quota = target * avail / total
    can_give = avail >= 1 + later
    lo = can_give.astype(np.int64) if int(can_give.sum()) <= target else np.zeros_like(avail)
    hi = np.maximum(avail - later, lo)
    if int(hi.sum()) < target:
        hi = avail.copy()
    x = np.clip(np.floor(quota).astype(np.int64), lo, hi)
    while int(x.sum()) < target:
        order = np.lexsort((tie, -(quota - x)))  # largest remainder first, random tie-break
        room = order[x[order] < hi[order]]
        x[room[:target - int(x.sum())]] += 1
    while int(x.sum()) > target:
        order = np.lexsort((tie, quota - x))  # most over-served first
        room = order[x[order] > lo[order]]
        x[room[:int(x.sum()) - target]] -= 1
    return x
