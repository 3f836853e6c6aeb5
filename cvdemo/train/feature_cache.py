"""The frozen-backbone shortcut: when only the head learns and nothing random touches the images,
the backbone's output is the same every epoch, so it is computed once and the head trains on it; with a
runs root given, it is also kept in that root's feature store (`cvdemo.train.feature_store`), so the next
head-only run on the same data and backbone reads it instead of running the backbone again.

    if can_cache_features(config, setup):
        train_batches = feature_batches(setup, setup.bundle.train, head, amp, 64, shuffle=True, seed=0,
                                        runs_root=run_dir.parent)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cvdemo.config import RunConfig
from cvdemo.data import make_loader
from cvdemo.data.loader import TensorBatches
from cvdemo.models.features import capture
from cvdemo.progress import Phase
from cvdemo.train.feature_store import FeatureStore, feature_key, store_enabled, store_root
from cvdemo.train.setup import Setup

__all__ = ["can_cache_features", "head_inputs", "feature_batches"]


def can_cache_features(config: RunConfig, setup: Setup) -> bool:
    """True when training would recompute identical backbone features every epoch."""
    t = config.train
    head_only = all(g.trains_from is None for g in setup.groups[:-1])
    return (t.cache_features and head_only and config.data.augment == "none" and t.mixup == 0 and t.cutmix == 0
            and not t.compile)


def head_inputs(setup: Setup, images: Any, head: torch.nn.Module, amp: torch.dtype | None,
                batch_size: int = 256, meter: Phase | None = None,
                on_images: Callable[[torch.Tensor], None] | None = None,
                runs_root: str | Path | None = None) -> torch.Tensor:
    """The frozen model's input to its head for every image, in order: float (N, D) on the device.
    `meter`: told of each batch's images (the progress of the feature-cache phase). `on_images`: called with
    each batch's uint8 (B, C, H, W) pixels as loaded, so a caller can look at them without decoding twice.
    `runs_root`: read the features from that root's feature store when they are there, else compute them and
    keep them there (None, an empty split, or CVDEMO_FEATURE_STORE=0: computed, not stored)."""
    if runs_root is None or len(images) == 0 or not store_enabled() \
            or head is not setup.model.get_submodule(setup.spec.head):  # the key names the registry's head
        return _compute(setup, images, head, amp, batch_size, meter, on_images)
    store = FeatureStore(store_root(runs_root))
    key, parts = feature_key(setup, images, amp)
    stored = store.get(key, len(images))
    if stored is None:
        features = _compute(setup, images, head, amp, batch_size, meter, on_images)
        store.put(key, features, parts)
        return features
    if on_images is not None:  # the caller still sees every image's pixels (no backbone pass)
        for x, _ in make_loader(images, batch_size=batch_size, shuffle=False):
            on_images(x)
    if meter is not None:
        meter.add(len(images))
    return stored.to(setup.device)


@torch.no_grad()
def _compute(setup: Setup, images: Any, head: torch.nn.Module, amp: torch.dtype | None, batch_size: int,
             meter: Phase | None, on_images: Callable[[torch.Tensor], None] | None) -> torch.Tensor:
    """The backbone run over every image (see `head_inputs`)."""
    was_training = setup.model.training
    setup.model.eval()
    try:
        with capture(head, "input") as captured:
            done = 0
            for x, _ in make_loader(images, batch_size=batch_size, shuffle=False,
                                    pin_memory=setup.device.type == "cuda"):
                if on_images is not None:
                    on_images(x)
                with torch.autocast(setup.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    setup.model(setup.prepare(x))
                # fp32 as soon as seen (autocast may hand the head bf16), as the whole cache is kept
                captured[done:] = [t.detach().float() for t in captured[done:]]
                done = len(captured)
                if meter is not None:
                    meter.add(len(x))
    finally:
        setup.model.train(was_training)
    return torch.cat(captured)


def feature_batches(setup: Setup, images: Any, head: torch.nn.Module, amp: torch.dtype | None,
                    batch_size: int, shuffle: bool, seed: int, cache_batch: int = 256,
                    meter: Phase | None = None, runs_root: str | Path | None = None) -> TensorBatches:
    """Batches of (cached head inputs, labels) shuffled per epoch like the image loader, both on the
    device the features were computed on; the backbone runs over the images in batches of `cache_batch`,
    each reported to `meter` (or the features come from `runs_root`'s feature store: see `head_inputs`)."""
    features = head_inputs(setup, images, head, amp, batch_size=cache_batch, meter=meter, runs_root=runs_root)
    # the labels go where the features are: TensorBatches indexes both with one order on that device
    return TensorBatches(features, images.labels.to(features.device), batch_size=batch_size,
                         shuffle=shuffle, seed=seed)
