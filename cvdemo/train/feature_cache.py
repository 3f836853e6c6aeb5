"""The frozen-backbone shortcut: when only the head learns and nothing random touches the images,
the backbone's output is the same every epoch, so it is computed once and the head trains on it; with a
runs root given, it is also kept in that root's feature store (`cvdemo.train.feature_store`), so the next
head-only run on the same data and backbone reads it instead of running the backbone again.

    if can_cache_features(config, setup):
        train_batches = feature_batches(setup, setup.bundle.train, head, amp, 64, shuffle=True, seed=0,
                                        runs_root=run_dir.parent)

A later run on the same folder or zip need not even decode its images: `remember_bundle` notes, under a
fingerprint of the files (names and stamps, none opened), the pixel digests a decoding load measured, and
`quick_bundle` lists the files, finds that note and gives the run undecoded splits that carry those digests;
`features_stored` then says whether every split's features are in the store (if not, the run decodes after all).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cvdemo.config import RunConfig
from cvdemo.data import make_loader
from cvdemo.data.dataset import is_builtin
from cvdemo.data.imageset import DataBundle, ImageSet
from cvdemo.data.loader import TensorBatches
from cvdemo.errors import CvdemoError
from cvdemo.models.features import capture
from cvdemo.progress import Phase
from cvdemo.train.feature_store import FeatureStore, feature_key, images_digest, store_enabled, store_root
from cvdemo.train.setup import Setup, load_data

__all__ = ["can_cache_features", "head_inputs", "feature_batches", "quick_bundle", "features_stored",
           "remember_bundle"]

SPLITS = ("train", "val", "test")


def can_cache_features(config: RunConfig, setup: Setup) -> bool:
    """True when training would recompute identical backbone features every epoch."""
    head_only = all(g.trains_from is None for g in setup.groups[:-1])
    return head_only and _images_untouched(config)


def _images_untouched(config: RunConfig) -> bool:
    """What `can_cache_features` asks of the config alone: caching on, nothing random on the images, no compile."""
    t = config.train
    return t.cache_features and config.data.augment == "none" and t.mixup == 0 and t.cutmix == 0 and not t.compile


def quick_bundle(config: RunConfig, runs_root: str | Path) -> DataBundle | None:
    """The run's data set with no image file opened, or None: for a run that may take all its features from the
    store (a frozen pretrained backbone, nothing random on the images; `can_cache_features` decides for good
    once the model is built) on a folder or zip whose files, unchanged, an earlier run decoded and noted
    (`remember_bundle`). Its splits list their files lazily and carry the pixel digests that run measured, so
    their feature keys are the ones that run stored under; they are never decoded (see `features_stored`)."""
    if not (store_enabled() and config.model.pretrained and config.model.freeze != "none"
            and _images_untouched(config)) or is_builtin(config.data.source):
        return None
    bundle = load_data(config, decode=False)
    note = FeatureStore(store_root(runs_root)).recall_data(_fingerprint(bundle))
    if note is None:
        return None
    for split in SPLITS:
        getattr(bundle, split).pixels_digest = note[split]
    bundle.channels = note["channels"]
    return bundle


def features_stored(setup: Setup, amp: torch.dtype | None, runs_root: str | Path) -> bool:
    """Whether the store holds, intact, the head inputs of every split of `setup.bundle`."""
    store = FeatureStore(store_root(runs_root))
    return all(store.get(feature_key(setup, images, amp)[0], len(images)) is not None
               for images in (getattr(setup.bundle, split) for split in SPLITS) if len(images))


def remember_bundle(config: RunConfig, bundle: DataBundle, runs_root: str | Path) -> None:
    """After a frozen run decoded a folder or zip and stored its features: note each split's pixel digest under
    the files' fingerprint, for `quick_bundle`. Not when files were skipped (the split then holds fewer files
    than it lists) or the store is off."""
    if not store_enabled() or is_builtin(config.data.source) or bundle.skipped \
            or any(getattr(bundle, split).pixels_digest is not None for split in SPLITS):  # itself quick
        return
    note: dict[str, Any] = {split: images_digest(getattr(bundle, split)) for split in SPLITS}
    FeatureStore(store_root(runs_root)).remember_data(_fingerprint(load_data(config, decode=False)),
                                                      {**note, "channels": bundle.channels})


def _fingerprint(bundle: DataBundle) -> str:
    """Which files each split of an undecoded bundle holds, with their labels and stamps."""
    h = hashlib.blake2b(digest_size=20)
    for split in SPLITS:
        images: ImageSet = getattr(bundle, split)
        assert images.source is not None  # load_data(decode=False) lists every split lazily
        h.update(f"{split} {len(images)} {images.source.fingerprint()} ".encode())
        h.update(images.labels.numpy().tobytes())
    return h.hexdigest()


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
    if stored is None and images.pixels_digest is not None and images.images is None:
        # an undecoded split (quick_bundle) whose features were there a moment ago (features_stored)
        raise CvdemoError("the feature store changed while this run was starting (another run trimmed or cleared "
                          "it): start the run again")
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
