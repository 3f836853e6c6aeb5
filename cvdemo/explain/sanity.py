"""Does a map depend on what the network learned? The model-randomisation sanity check.

    check = randomization_check(model, x, "gradcam")   # {"spearman", "trained", "randomized"}
"""

from __future__ import annotations

import copy
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from cvdemo.explain.verb import Explanation, explain


class RandomizationCheck(TypedDict):
    spearman: float            # rank correlation of the two maps, NaN when either is constant
    trained: Explanation       # the map of the model as given
    randomized: Explanation    # the map of the same architecture with random weights, same target


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a flat array, ties given their average rank (float64)."""
    v = np.asarray(values).reshape(-1)
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    edges = np.concatenate(([0], np.flatnonzero(sorted_v[1:] != sorted_v[:-1]) + 1, [len(v)]))
    average = (edges[:-1] + edges[1:] + 1) / 2.0  # mean of ranks lo+1 .. hi
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.repeat(average, np.diff(edges))
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally sized arrays (NaN when either is constant)."""
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of `model` with every layer re-initialised (same architecture, weights at random)."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in clone.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
    return clone


def randomization_check(model: nn.Module, image: torch.Tensor, method: str, target: int | None = None, *,
                        seed: int = 0, **options: Any) -> RandomizationCheck:
    """Model-randomisation sanity check (Adebayo et al. 2018): Spearman correlation between the map of
    the trained model and that of the same architecture with random weights, same image and target.

    Near 1: the map hardly depends on what the network learned (an edge detector); low: it does.
    Returns {"spearman", "trained": Explanation, "randomized": Explanation}.
    """
    trained = explain(model, image, method, target, **options)
    randomized = explain(randomized_copy(model, seed), image, method, trained.target, **options)
    return {"spearman": spearman(trained.map, randomized.map), "trained": trained, "randomized": randomized}
