"""Built-in data sets: scikit-learn's 8x8 digits (offline) and four torchvision downloads."""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from cvdemo.data.imageset import ImageSet
from cvdemo.data.split import stratified_split
from cvdemo.errors import DataError

SOURCES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100")
DIGITS_SEED = 0  # the digits split never depends on the run's seed, so its test set never changes
DIGITS_LEVELS = 16  # the digits are 8x8 counts of ink pixels in 4x4 blocks of a 32x32 bitmap: 0..16


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`, else $CVDEMO_CACHE, else ~/.cache/cvdemo."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("CVDEMO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cvdemo"


def digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1797 digits as uint8 (1797, 1, 8, 8) scaled 0..255, and int64 labels, read from scikit-learn's
    data file without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the digits data set comes with scikit-learn, which is not installed: "
                        "pip install scikit-learn, or use an image folder")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    try:
        with gzip.open(path, "rb") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read scikit-learn's digits file {path} ({e}): reinstall scikit-learn") from None
    pixels = digit_counts_to_pixels(table[:, :64])
    images = torch.from_numpy(pixels.reshape(-1, 1, 8, 8).copy())
    labels = torch.from_numpy(table[:, 64].astype(np.int64))
    return images, labels


def digit_counts_to_pixels(counts: np.ndarray) -> np.ndarray:
    """The digits' grey levels (0..DIGITS_LEVELS: ink pixels counted in each 4x4 block of a 32x32 bitmap) as the
    uint8 0..255 pixels the data set stores; cvdemo.data.drawing makes a drawing's 8x8 image with it too."""
    return np.rint(np.asarray(counts, dtype=np.float64) * (255.0 / DIGITS_LEVELS)).clip(0, 255).astype(np.uint8)


def load_digits() -> tuple[list[str], ImageSet, ImageSet, ImageSet]:
    """classes and the fixed stratified 60/20/20 train/val/test split of the digits."""
    images, labels = digits_arrays()
    test_idx, val_idx, train_idx = stratified_split(labels, [0.2, 0.2], DIGITS_SEED)
    full = ImageSet(images, labels)
    return [str(i) for i in range(10)], full.subset(train_idx), full.subset(val_idx), full.subset(test_idx)


def load_torchvision(name: str, cache_dir: str | Path | None = None) -> tuple[list[str], ImageSet, ImageSet]:
    """classes, train and test of a torchvision data set, downloaded into <cache>/datasets/<name> if absent."""
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10,
           "cifar100": tvd.CIFAR100}[name]
    root = cache_root(cache_dir) / "datasets" / name
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the folder {root} for {name} ({e.strerror or e}): "
                        f"set CVDEMO_CACHE to a writable folder") from None
    try:
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
    except Exception as e:  # urllib, HTTP, tarfile, integrity errors: all mean "not there"
        reason = " ".join(str(e).split())[:100] or type(e).__name__
        raise DataError(f"could not download {name} into {root} (no network? {reason}): place the torchvision "
                        f"files there, or use --data digits or an image folder") from None
    return list(train.classes), _to_imageset(train), _to_imageset(test)


def _to_imageset(ds: object) -> ImageSet:
    data = ds.data  # type: ignore[attr-defined]
    images = torch.as_tensor(np.asarray(data), dtype=torch.uint8)
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)  # type: ignore[attr-defined]
    return ImageSet(images.contiguous(), labels)
