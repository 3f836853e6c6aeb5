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
from cvdemo.data.sharding import shard_order, shard_size
from cvdemo.errors import DataError

AUGMENT_PRESETS: tuple[str, ...] = ("none", "standard", "rrc", "trivialaugment")
# Presets the device-resident path applies to whole batches on the device (the others need per-sample
# PIL-style transforms, which stream through a DataLoader).
DEVICE_AUGMENTS: tuple[str, ...] = ("none", "standard")
RESIDENT_MODES: tuple[str, ...] = ("auto", "on", "off")
# "auto" keeps a data set on a GPU when it takes at most this fraction of the GPU's free memory.
RESIDENT_MAX_FRACTION = 0.25


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
                workers: int | None = None, drop_last: bool = False, pin_memory: bool = False,
                resident: str = "off", device: torch.device | str | None = None) -> Iterable:
    """An iterable of (uint8 (B, C, H, W), int64 (B,)) batches; `len()` is the number of batches.

    Each pass (epoch) shuffles with torch.Generator(seed + epoch): a different order every epoch,
    the same orders for the same seed. In-memory data without augmentation is sliced straight
    from the tensor; otherwise a DataLoader applies the per-sample transform (`workers` processes;
    default 0 for in-memory data on the CPU, min(2, cores) for lazy data, and when feeding a GPU from
    pinned memory a count that follows the cores: `default_workers`),
    each sample's augmentation seeded from the same generator, so results do not depend on the
    number of workers.

    `resident` ("auto", "on", "off") is the device-resident path: the decoded set is kept as one
    uint8 tensor on `device` and whole batches are cropped and flipped there (`resident_batches`),
    so nothing crosses from the host per step. "on" always (any device, the CPU by default; presets
    "none" and "standard" only); "auto" when `device` is a CUDA GPU, the preset allows it and the
    set takes at most a quarter of the GPU's free memory; "off" never. It visits the same samples
    in the same order as the other paths for the same seed; the crops and flips are drawn differently.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    transform = train_transform(augment, images.image_size() or (0, 0))
    target = resident_device(images, augment, resident, device)
    if target is not None:
        return resident_batches(images, target, batch_size=batch_size, shuffle=shuffle, augment=augment,
                                seed=seed, drop_last=drop_last, workers=workers)
    pin = bool(pin_memory and torch.cuda.is_available())
    if images.images is not None and transform is None:
        return TensorBatches(images.images, images.labels, batch_size=batch_size, shuffle=shuffle, seed=seed,
                             drop_last=drop_last, pin_memory=pin)
    if workers is None:
        workers = default_workers(pin, in_memory=images.images is not None)
    sampler = SeededSampler(len(images), shuffle=shuffle, seed=seed)
    return SampleLoader(torch.utils.data.DataLoader(
        _Transformed(images, transform), batch_size=batch_size, sampler=sampler, num_workers=workers,
        persistent_workers=workers > 0, pin_memory=pin, drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed)), sampler)


def default_workers(feeds_gpu: bool, in_memory: bool) -> int:
    """DataLoader worker processes when the caller leaves it open. Training on the CPU: none for
    in-memory data and at most 2 for files (workers would compete with training for the same cores).
    Feeding a GPU (pinned batches): the cores this process may use, shared among the processes torchrun
    started on this machine (LOCAL_WORLD_SIZE), one left for the training loop, at least 1, at most 16."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not feeds_gpu:
        return 0 if in_memory else min(2, cores)
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(16, cores // local - 1))


def resident_device(images: ImageSet, augment: str, resident: str,
                    device: torch.device | str | None) -> torch.device | None:
    """The device to keep `images` on for the device-resident path, or None for the streaming paths."""
    if resident not in RESIDENT_MODES:
        raise DataError(f"resident must be one of {', '.join(RESIDENT_MODES)}, not {resident!r}")
    if resident == "off":
        return None
    target = torch.device(device) if device is not None else torch.device("cpu")
    if augment not in DEVICE_AUGMENTS:
        if resident == "on":
            raise DataError(f"the {augment} augmentation runs per image on the CPU, so the data cannot stay on "
                            f"the {target.type} device: use augment {' or '.join(DEVICE_AUGMENTS)}, or resident off")
        return None
    if resident == "on":
        return target
    return target if target.type == "cuda" and resident_fits(images, target) else None


def resident_fits(images: ImageSet, device: torch.device, fraction: float = RESIDENT_MAX_FRACTION) -> bool:
    """True when the decoded set (uint8 pixels and int64 labels) takes at most `fraction` of the device's
    free memory (CUDA; other devices are not measured and count as fitting)."""
    size = images.image_size()
    if size is None:
        return False
    need = len(images) * (images.channels * size[0] * size[1] + 8)
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return need <= fraction * free


def resident_batches(images: ImageSet, device: torch.device, *, batch_size: int, shuffle: bool,
                     augment: str = "none", seed: int = 0, drop_last: bool = False,
                     workers: int | None = None) -> TensorBatches:
    """TensorBatches over the whole set copied once to `device` as uint8 (a lazy set is decoded first,
    once), augmented there batch by batch."""
    if images.images is None:  # decode every file once, in order
        parts = [x for x, _ in make_loader(images, batch_size=256, shuffle=False, workers=workers)]
        pixels = torch.cat(parts) if parts else torch.zeros((0, images.channels, 1, 1), dtype=torch.uint8)
    else:
        pixels = images.images
    return TensorBatches(pixels.to(device), images.labels.to(device), batch_size=batch_size, shuffle=shuffle,
                         seed=seed, drop_last=drop_last, augment=augment)


def pad_crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """A random crop with reflect padding, then a horizontal flip, for a whole batch in one gather.

    x: uint8 (or any dtype) (B, C, H, W) on any device; dy, dx: int (B,) on the same device, each
    sample's shift in [-pad, pad] (pad < H, W); flip: bool (B,). Sample b equals torchvision's
    RandomCrop((H, W), padding=pad, padding_mode="reflect") cropping at top = dy + pad, left = dx + pad,
    followed by a horizontal flip where flip[b]: out[b, :, i, j] = x[b, :, r(i + dy), r(j' + dx)] with
    j' = W - 1 - j when flipped and r reflecting at the borders without repeating the edge pixel.
    """
    b, c, h, w = x.shape
    rows = _reflect(torch.arange(h, device=x.device)[None, :] + dy[:, None], h)  # (B, H)
    cols = _reflect(torch.arange(w, device=x.device)[None, :] + dx[:, None], w)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return x.reshape(b, c, h * w).gather(2, index).reshape(b, c, h, w)


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Indices reflected into 0..n-1 about the edge pixels (-1 -> 1, n -> n - 2), for |shift| < n."""
    i = i.abs()
    return torch.where(i >= n, 2 * (n - 1) - i, i)


class SampleLoader:
    """A DataLoader whose DataErrors (a file that cannot be decoded, raised in a worker process)
    come out as the original one-sentence message instead of a worker traceback."""

    def __init__(self, loader: torch.utils.data.DataLoader, sampler: SeededSampler):
        self.loader, self.sampler = loader, sampler  # the loader's own sampler, kept with its real type

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """The next pass shuffles and augments as epoch `epoch` (0-based) of an uninterrupted run."""
        self.sampler.epoch = epoch

    def shard(self, rank: int, world: int, *, pad: bool) -> None:
        """From now on yield only rank `rank`'s share of each epoch (see cvdemo.data.sharding)."""
        self.sampler.shard(rank, world, pad=pad)

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
    """Batches sliced from tensors (on the CPU or on the training device), reshuffled each time it is
    iterated; with augment="standard" each batch is randomly cropped (reflect padding of side/8) and
    flipped where the tensors are (`pad_crop_flip`), so device-resident data never leaves the device.

    The order of an epoch is torch.randperm(n) from torch.Generator(seed + epoch), the same draw as
    the DataLoader path's sampler; the crop offsets and flips are drawn from that generator after it.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, shuffle: bool,
                 seed: int = 0, drop_last: bool = False, pin_memory: bool = False, augment: str = "none"):
        if augment not in DEVICE_AUGMENTS:
            raise DataError(f"batch augmentation must be one of {', '.join(DEVICE_AUGMENTS)}, not {augment!r}")
        # one order indexes both, on the images' device: labels kept elsewhere would fail at the first batch
        self.images, self.labels = images, labels.to(images.device)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last, self.pin_memory, self.augment = drop_last, pin_memory, augment
        self.epoch = 0
        self.rank, self.world, self.pad = 0, 1, False

    def set_epoch(self, epoch: int) -> None:
        """The next pass shuffles as epoch `epoch` (0-based) of an uninterrupted run."""
        self.epoch = epoch

    def shard(self, rank: int, world: int, *, pad: bool) -> None:
        """From now on yield only rank `rank`'s share of each epoch (see cvdemo.data.sharding)."""
        self.rank, self.world, self.pad = rank, world, pad

    def _count(self) -> int:
        return shard_size(len(self.labels), self.rank, self.world, pad=self.pad)

    def __len__(self) -> int:
        n = self._count()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else None
        shifts = None
        if self.augment == "standard":
            h, w = self.images.shape[-2:]
            pad = min(h, w) // 8
            shifts = torch.stack([torch.randint(-pad, pad + 1, (n,), generator=g),
                                  torch.randint(-pad, pad + 1, (n,), generator=g),
                                  torch.randint(0, 2, (n,), generator=g)])  # (3, n): dy, dx, flip per position
        self.epoch += 1
        if self.world > 1:
            positions = shard_order(torch.arange(n), self.rank, self.world, pad=self.pad)
            order = positions if order is None else order[positions]
            shifts = shifts[:, positions] if shifts is not None else None
        device = self.images.device
        if order is not None and device.type != "cpu":
            order = order.to(device, non_blocking=True)
        if shifts is not None:
            shifts = shifts.to(device, non_blocking=True)
        return self._batches(order, shifts)

    def _batches(self, order: torch.Tensor | None, shifts: torch.Tensor | None
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs = (len(order) if order is not None else len(self.labels)), self.batch_size
        for i in range(len(self)):
            lo, hi = i * bs, min(n, (i + 1) * bs)
            if order is None:
                x, y = self.images[lo:hi], self.labels[lo:hi]
            else:
                idx = order[lo:hi]
                x, y = self.images[idx], self.labels[idx]
            if shifts is not None:
                s = shifts[:, lo:hi]
                x = pad_crop_flip(x, s[0], s[1], s[2].bool())
            if self.pin_memory:
                x, y = x.pin_memory(), y.pin_memory()
            yield x, y


class SeededSampler(torch.utils.data.Sampler):
    """Yields (index, sample seed) pairs: order and seeds from torch.Generator(seed + epoch)."""

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0):
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.epoch = 0
        self.rank, self.world, self.pad = 0, 1, False

    def shard(self, rank: int, world: int, *, pad: bool) -> None:
        """Yield only rank `rank`'s share of each epoch: the pairs a single process would yield, dealt out."""
        self.rank, self.world, self.pad = rank, world, pad

    def __len__(self) -> int:
        return shard_size(self.n, self.rank, self.world, pad=self.pad)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=g)
        if self.world > 1:
            positions = shard_order(torch.arange(self.n), self.rank, self.world, pad=self.pad)
            order, seeds = order[positions], seeds[positions]
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
