"""Benchmark of `cvdemo.embed.tsne` against scikit-learn's TSNE on real digit pixels."""

from __future__ import annotations

import time
from typing import Any

import torch


def tsne_points(n: int = 5000, seed: int = 0) -> tuple[Any, Any]:
    """(float32 (n, 64), int labels (n,)): scikit-learn's 8x8 digits and copies shifted by one pixel in
    each direction (zero fill), n of them chosen at random without repeats. Real pixels, real classes."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images
    variants, labels = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = np.zeros_like(images)
            ys, yd = (slice(0, 8 - dy), slice(dy, 8)) if dy >= 0 else (slice(-dy, 8), slice(0, 8 + dy))
            xs, xd = (slice(0, 8 - dx), slice(dx, 8)) if dx >= 0 else (slice(-dx, 8), slice(0, 8 + dx))
            shifted[:, yd, xd] = images[:, ys, xs]
            variants.append(shifted.reshape(len(images), 64))
            labels.append(digits.target)
    pool, pool_labels = np.concatenate(variants), np.concatenate(labels)
    pick = np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False)
    return pool[pick].astype(np.float32), pool_labels[pick]


def bench_embed(device: torch.device, n: int = 5000, threads: int = 2) -> dict[str, Any]:
    """t-SNE of n points of 64 dimensions with `cvdemo.embed.tsne` (backend auto: openTSNE when installed,
    Barnes-Hut below 10,000 points, after PCA to 50 dimensions) vs scikit-learn's TSNE called directly,
    both on `threads` threads; also each picture's leave-one-out 5-NN accuracy (same quality?)."""
    from sklearn.manifold import TSNE

    from cvdemo.embed import knn_accuracy, tsne

    x, labels = tsne_points(n)
    start = time.perf_counter()
    ours, info = tsne(x, 2, n_jobs=threads)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = TSNE(n_components=2, perplexity=30.0, random_state=0, init="pca", learning_rate="auto",
               n_jobs=threads).fit_transform(x)
    sklearn_s = time.perf_counter() - start
    return {"points": len(x), "dims": x.shape[1], "threads": threads, "ours_backend": info["backend"],
            "ours_s": ours_s, "sklearn_s": sklearn_s, "ours_knn5": knn_accuracy(ours, labels),
            "sklearn_knn5": knn_accuracy(ref, labels), "ratio": sklearn_s / ours_s}
