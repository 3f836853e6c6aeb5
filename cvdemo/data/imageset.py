"""ImageSet (one split of labelled images) and DataBundle (a whole data set)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from cvdemo import limits
from cvdemo.data.decode import finish_decode, open_header

if TYPE_CHECKING:
    from cvdemo.data.archive import ImageReader


class LazySource:
    """Where a lazy ImageSet's files are: a reader (folder or zip), one member per image, and the
    square side every image is resized to when decoded."""

    def __init__(self, reader: ImageReader, members: Sequence[Any], size: int, max_pixels: int | None = None):
        self.reader, self.members, self.size = reader, list(members), int(size)
        self.max_pixels = limits.max_pixels() if max_pixels is None else max_pixels

    def subset(self, idx: Sequence[int]) -> LazySource:
        return LazySource(self.reader, [self.members[i] for i in idx], self.size, self.max_pixels)

    def fingerprint(self) -> str:
        """A digest of which files these are, in order, and of their content as stamped by the reader (size,
        times, inode; a zip member's CRC), without reading them: it changes when any file does."""
        h = hashlib.blake2b(digest_size=20)
        h.update(f"{type(self.reader).__name__} size={self.size} max_pixels={self.max_pixels}".encode())
        for member in self.members:
            h.update(f"\n{self.reader.display(member)}\0{self.reader.stamp(member)}".encode())
        return h.hexdigest()

    def load(self, i: int, channels: int) -> torch.Tensor:
        """Decode member i -> uint8 (channels, size, size)."""
        member = self.members[i]
        name = self.reader.display(member)
        img = open_header(self.reader.read(member), name, max_pixels=self.max_pixels)
        img = finish_decode(img, name, "L" if channels == 1 else "RGB", draft=(self.size, self.size))
        return pil_to_tensor(resize_square(img, self.size))


class ImageSet(torch.utils.data.Dataset):
    """One split: N images with integer labels. `__getitem__(i)` -> (uint8 tensor (C, H, W), int label).

    In memory, `images` is a uint8 tensor (N, C, H, W); lazy sets (`images is None`) decode a
    file on each access, resized to a fixed square. Both kinds pickle cheaply (zip archives
    are reopened by each process), so DataLoader workers can use them.
    """

    def __init__(self, images: torch.Tensor | None, labels: torch.Tensor | Sequence[int] | np.ndarray, *,
                 channels: int | None = None, source: LazySource | None = None,
                 names: Sequence[str] | None = None):
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
        if images is not None:
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
            if len(images) != len(self.labels):
                raise ValueError(f"{len(images)} images but {len(self.labels)} labels")
            channels = images.shape[1]
        elif source is None:
            raise ValueError("an ImageSet needs images in memory or a lazy source")
        elif len(source.members) != len(self.labels):
            raise ValueError(f"{len(source.members)} files but {len(self.labels)} labels")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.images = images
        self.channels = int(channels)
        self.source = source
        self.names = list(names) if names is not None else None  # file names, for folder and zip data
        # A digest of the pixels this set stands for, known without decoding them: set on a set loaded
        # undecoded (load_folder(decode=False)) when an earlier, decoding load of the same files measured it
        # (cvdemo.train.feature_cache.quick_bundle). None: compute it from the pixels.
        self.pixels_digest: str | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.images is not None:
            return self.images[i], int(self.labels[i])
        n = len(self.labels)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        i = i % n
        assert self.source is not None  # __init__ requires images in memory or a lazy source
        return self.source.load(i, self.channels), int(self.labels[i])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageSet:
        """The images at `indices` (same kind, memory or lazy), with their labels."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64)).reshape(-1)
        names = [self.names[i] for i in idx.tolist()] if self.names is not None else None
        if self.images is not None:
            return ImageSet(self.images[idx], self.labels[idx], names=names)
        assert self.source is not None  # __init__ requires images in memory or a lazy source
        return ImageSet(None, self.labels[idx], channels=self.channels, source=self.source.subset(idx.tolist()),
                        names=names)

    def image_size(self) -> tuple[int, int] | None:
        """(H, W) shared by all images: the tensor's for in-memory sets, the resize target for lazy ones."""
        if self.images is not None:
            return int(self.images.shape[2]), int(self.images.shape[3])
        if self.source is not None:
            return self.source.size, self.source.size
        return None

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def class_counts(self, num_classes: int | None = None) -> list[int]:
        """Images per label (a list indexed by label)."""
        return torch.bincount(self.labels, minlength=num_classes or 0).tolist()

    def __repr__(self) -> str:
        kind = "in memory" if self.images is not None else "lazy"
        return f"ImageSet({len(self)} images, {self.channels} channels, {self.image_size()}, {kind})"


@dataclass
class DataBundle:
    """A data set: class names (index = label), three splits, and what was skipped while loading."""
    name: str
    classes: list[str]
    train: ImageSet
    val: ImageSet
    test: ImageSet
    channels: int
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """{"name", "classes", "channels", "train", "val", "test", "skipped"}: sizes as counts."""
        return {"name": self.name, "classes": list(self.classes), "channels": self.channels,
                "train": len(self.train), "val": len(self.val), "test": len(self.test),
                "skipped": len(self.skipped)}


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """An "L" or "RGB" PIL image -> uint8 (C, H, W)."""
    a = np.asarray(img)
    t = torch.from_numpy(a.copy())
    return t.unsqueeze(0) if a.ndim == 2 else t.permute(2, 0, 1).contiguous()


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Resize (bilinear, area-averaging when shrinking) to size x size unless it already is."""
    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.Resampling.BILINEAR)
