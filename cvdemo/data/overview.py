"""A data set at a glance: classes, split sizes, images per class, pixel statistics and a few samples.

    overview = data_overview(load_dataset("digits"))
    overview["counts"]["train"][3]      # training images of class 3
    overview["samples"]["7"]            # uint8 (k, C, H, W): the first k training images of class "7"
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cvdemo.data.imageset import DataBundle
from cvdemo.data.preprocess import compute_mean_std

__all__ = ["SPLIT_NAMES", "data_overview", "class_samples"]

SPLIT_NAMES = ("train", "val", "test")


def class_samples(bundle: DataBundle, per_class: int = 8, max_classes: int = 30) -> dict[str, np.ndarray]:
    """{class name: uint8 (k, C, H, W)}: the first `per_class` training images of each of the first
    `max_classes` classes, in class order; a class with no training images is left out."""
    labels = bundle.train.labels.numpy()
    samples = {}
    for c in range(min(len(bundle.classes), max_classes)):
        idx = np.flatnonzero(labels == c)[:per_class]
        if len(idx):
            samples[bundle.classes[c]] = np.stack([bundle.train[int(i)][0].numpy() for i in idx])
    return samples


def data_overview(bundle: DataBundle, per_class: int = 8, max_classes: int = 30) -> dict[str, Any]:
    """Everything the Data page shows about a data set, as plain values:

    {"name", "classes", "channels", "sizes": {split: images}, "counts": {split: images per class (list
    indexed by label)}, "mean", "std" (per channel, of the training pixels in [0, 1]), "samples"
    (`class_samples`), "skipped" (unreadable files left out), "image_size" ((H, W) or None)}.
    """
    n = len(bundle.classes)
    splits = {s: getattr(bundle, s) for s in SPLIT_NAMES}
    mean, std = compute_mean_std(bundle.train)
    return {"name": bundle.name, "classes": list(bundle.classes), "channels": bundle.channels,
            "sizes": {s: len(images) for s, images in splits.items()},
            "counts": {s: images.class_counts(n) for s, images in splits.items()},
            "mean": mean, "std": std, "samples": class_samples(bundle, per_class, max_classes),
            "skipped": list(bundle.skipped), "image_size": bundle.train.image_size()}
