"""Batches for training and evaluation, and the per-sample augmentation presets.

Batches are (uint8 (B, C, H, W), int64 (B,)) at the ImageSet's storage size; resizing to the
model's input size and normalising happen later, per batch, in `to_model_input`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator

import torch

from cvdemo.data.imageset import ImageSet
from cvdemo.errors import DataError

AUGMENT_PRESETS: tuple[str, ...] = ("none", "standard", "rrc", "trivialaugment")


def train_transform(augment: str, size: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Per-sample augmentation: uint8 (C, H, W) -> uint8 (C, H, W) with (H, W) = `size`; None for "none".

    standard: random crop with reflect padding of size/8 + horizontal flip; rrc: random-resized
    crop (35-100 % of the area) + flip; trivialaugment: TrivialAugmentWide + flip.
    """
    if augment not in AUGMENT_PRESETS:
        raise DataError(f"unknown augmentation {augment!r}: use one of {', '.join(AUGMENT_PRESETS)}")
    if augment == "none":
        return None
    from torchvision.transforms import v2

    h, w = int(size[0]), int(size[1])
    if augment == "standard":
        pad = min(h, w) // 8
        return v2.Compose([v2.RandomCrop((h, w), padding=pad or None, padding_mode="reflect"),
                           v2.RandomHorizontalFlip()])
    if augment == "rrc":
        return v2.Compose([v2.RandomResizedCrop((h, w), scale=(0.35, 1.0), antialias=True),
                           v2.RandomHorizontalFlip()])
    return v2.Compose([v2.TrivialAugmentWide(), v2.RandomHorizontalFlip()])


def make_loader(images: ImageSet, *, batch_size: int, shuffle: bool, augment: str = "none", seed: int = 0,
                workers: int | None = None, drop_last: bool = False, pin_memory: bool = False) -> Iterable:
    """An iterable of (uint8 (B, C, H, W), int64 (B,)) batches; `len()` is the number of batches.

    Each pass (epoch) shuffles with torch.Generator(seed + epoch): a different order every epoch,
    the same orders for the same seed. In-memory data without augmentation is sliced straight
    from the tensor; otherwise a DataLoader applies the per-sample transform (`workers` processes;
    default 0 for in-memory data, min(2, cores) for lazy data), each sample's augmentation seeded
    from the same generator, so results do not depend on the number of workers.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    transform = train_transform(augment, images.image_size() or (0, 0))
    pin = bool(pin_memory and torch.cuda.is_available())
    if images.images is not None and transform is None:
        return TensorBatches(images.images, images.labels, batch_size=batch_size, shuffle=shuffle, seed=seed,
                             drop_last=drop_last, pin_memory=pin)
    if workers is None:
        workers = 0 if images.images is not None else min(2, os.cpu_count() or 1)
    sampler = SeededSampler(len(images), shuffle=shuffle, seed=seed)
    return SampleLoader(torch.utils.data.DataLoader(
        _Transformed(images, transform), batch_size=batch_size, sampler=sampler, num_workers=workers,
        persistent_workers=workers > 0, pin_memory=pin, drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed)))


class SampleLoader:
    """A DataLoader whose DataErrors (a file that cannot be decoded, raised in a worker process)
    come out as the original one-sentence message instead of a worker traceback."""

    def __init__(self, loader: torch.utils.data.DataLoader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """The next pass shuffles and augments as epoch `epoch` (0-based) of an uninterrupted run."""
        self.loader.sampler.epoch = epoch

    def __getattr__(self, name: str):
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        it = iter(self.loader)
        try:
            yield from it
        except DataError as e:
            self._stop_workers(it)
            text = str(e)
            lines = [ln for ln in text.splitlines() if ln.startswith(("DataError: ", "cvdemo.errors.DataError: "))]
            if not lines:
                raise
            raise DataError(lines[-1].split("DataError: ", 1)[1]) from None

    def _stop_workers(self, it: object) -> None:
        """After a worker failed, stop the workers now: PyTorch would otherwise wait 5 s for each one to
        finish (they do not), and persistent workers would be reused for the next pass."""
        for w in getattr(it, "_workers", []):
            if w.is_alive():
                w.terminate()
        if getattr(self.loader, "_iterator", None) is it:
            self.loader._iterator = None


class TensorBatches:
    """Batches sliced from in-memory tensors, reshuffled each time it is iterated."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, shuffle: bool,
                 seed: int = 0, drop_last: bool = False, pin_memory: bool = False):
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last, self.pin_memory = drop_last, pin_memory
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The next pass shuffles as epoch `epoch` (0-based) of an uninterrupted run."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = None
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.labels), generator=g)
        self.epoch += 1
        return self._batches(order)

    def _batches(self, order: torch.Tensor | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs = len(self.labels), self.batch_size
        for i in range(len(self)):
            lo, hi = i * bs, min(n, (i + 1) * bs)
            if order is None:
                x, y = self.images[lo:hi], self.labels[lo:hi]
            else:
                idx = order[lo:hi]
                x, y = self.images[idx], self.labels[idx]
            if self.pin_memory:
                x, y = x.pin_memory(), y.pin_memory()
            yield x, y


class SeededSampler(torch.utils.data.Sampler):
    """Yields (index, sample seed) pairs: order and seeds from torch.Generator(seed + epoch)."""

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0):
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=g)
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))


class _Transformed(torch.utils.data.Dataset):
    """An ImageSet indexed by (index, seed): the transform runs with the CPU generator seeded per sample
    (and the caller's random state restored afterwards)."""

    def __init__(self, images: ImageSet, transform: Callable[[torch.Tensor], torch.Tensor] | None):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        i, seed = key
        x, y = self.images[i]
        if self.transform is not None:
            state = torch.get_rng_state()
            try:
                torch.default_generator.manual_seed(seed)
                x = self.transform(x)
            finally:
                torch.set_rng_state(state)
        return x, y
