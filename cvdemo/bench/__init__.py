"""`cvdemo bench`: speed measured as ratios against a baseline run in the same process.

These machines are noisy, so an absolute time means little; each benchmark times
cvdemo and a plain-PyTorch baseline doing the same work back to back, and reports
both figures and their ratio (> 1 means cvdemo is faster). The baselines are plain
scripts and loops in `cvdemo/bench/baselines/`; one module here per family:

    training   train-throughput, inference, classroom, frozen-features, frozen-folder
    dynamics   dynamics (training with the per-layer-group dynamics recorded vs without: what recording costs)
    data       data (our folder loader vs torchvision's ImageFolder, and vs tensors in memory)
    explain    explain (vs Captum, and integrated gradients' peak memory)
    embed      embed (t-SNE vs scikit-learn)
    concurrent concurrent (CPU runs side by side vs one after the other)
    feature_store  feature-store (a frozen run that computes its features vs later runs that read them)
    app        app (latency in a headless Chromium vs a bare Streamlit app; not in `all`)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from cvdemo.bench import app, concurrent, data, dynamics, embed, explain, feature_store, training
from cvdemo.bench.embed import bench_embed, tsne_points
from cvdemo.bench.explain import explain_subject, explain_vs_captum, ig_peak_memory

__all__ = ["BENCHMARKS", "IN_ALL", "bench_embed", "explain_subject", "explain_vs_captum", "ig_peak_memory", "run",
           "tsne_points"]

# Name -> benchmark(device, ...) -> figures with a "ratio"; `cvdemo bench all` runs them in this order.
BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "train-throughput": training.bench_train_throughput,
    "dynamics": dynamics.bench_dynamics,
    "data": data.bench_data,
    "inference": training.bench_inference,
    "classroom": training.bench_classroom,
    "frozen-features": training.bench_frozen_features,
    "frozen-folder": training.bench_frozen_folder,
    "feature-store": feature_store.bench_feature_store,
    "explain": explain.bench_explain,
    "embed": embed.bench_embed,
    "concurrent": concurrent.bench_concurrent,
    "app": app.bench_app,
}
# `cvdemo bench all`: every benchmark but the app's, which needs Playwright and chromium (the test tools).
IN_ALL = [name for name in BENCHMARKS if name != "app"]


def run(names: list[str], device: torch.device) -> dict[str, Any]:
    """Run the named benchmarks on `device`: {name: figures + bench_seconds}."""
    results = {}
    for name in names:
        start = time.perf_counter()
        results[name] = {**BENCHMARKS[name](device), "bench_seconds": round(time.perf_counter() - start, 1)}
    return results
