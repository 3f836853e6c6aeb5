"""From stored uint8 pixels to model input: resize, scale, normalise, match the channel count."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cvdemo.data.decode import GRAY_MODES, to_mode
from cvdemo.data.imageset import ImageSet
from cvdemo.data.loader import make_loader


def to_model_input(x: torch.Tensor, *, size: int, mean: Sequence[float], std: Sequence[float],
                   channels: int) -> torch.Tensor:
    """uint8 (B, C, h, w) on any device -> float32 (B, channels, size, size) on the same device.

    Resizes (bilinear, antialiased when shrinking) unless (h, w) == (size, size), scales to [0, 1],
    turns 1 channel into 3 (copies) or 3 into 1 (average) to match `channels`, and normalises
    (x - mean) / std per channel; mean and std have length 1 or `channels` (or 3 when averaging
    3 channels down to 1: then their averages are used).
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    c, h, w = x.shape[1:]
    if c not in (1, 3) or channels not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (got {c}) and channels must be 1 or 3 (got {channels})")
    fresh = x.dtype != torch.float32
    x = x.to(torch.float32)
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < h or size < w)
        fresh = True
    if c == 3 and channels == 1:
        x = x.mean(dim=1, keepdim=True)
        fresh = True
    scale, shift = _affine(tuple(float(m) for m in mean), tuple(float(s) for s in std), c, channels, x.device)
    if x.shape[1] == 1 and channels == 3:
        return torch.addcmul(shift.expand(1, 3, 1, 1), x, scale.expand(1, 3, 1, 1))  # broadcasts to 3 channels
    if fresh:
        return x.mul_(scale).add_(shift)
    return torch.addcmul(shift, x, scale)


@functools.lru_cache(maxsize=64)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], c: int, channels: int,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of shape (1, k, 1, 1) on `device` with (x / 255 - mean) / std == x * scale + shift."""
    if len(mean) != len(std):
        raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
    if c == 3 and channels == 1 and len(mean) == 3:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    if len(mean) not in (1, channels):
        raise ValueError(f"mean and std must have 1 or {channels} values, got {len(mean)}")
    m = torch.tensor(mean, dtype=torch.float64)
    s = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (255.0 * s)).to(torch.float32).view(1, -1, 1, 1)
    shift = (-m / s).to(torch.float32).view(1, -1, 1, 1)
    return scale.to(device), shift.to(device)


def prepare_image(img: Image.Image, *, size: int, mean: Sequence[float], std: Sequence[float],
                  channels: int) -> torch.Tensor:
    """One PIL image -> float32 (1, channels, size, size), the same maths as `to_model_input`."""
    img = to_mode(img, "L" if img.mode in GRAY_MODES else "RGB")
    a = np.asarray(img)
    t = torch.from_numpy(a.copy())
    t = t.reshape(1, 1, *a.shape) if a.ndim == 2 else t.permute(2, 0, 1).unsqueeze(0)
    return to_model_input(t, size=size, mean=mean, std=std, channels=channels)


def compute_mean_std(images: ImageSet, max_images: int = 5000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of pixel values in [0, 1].

    Uses up to `max_images` images evenly spaced through the set; sums are exact integers.
    """
    n = len(images)
    if n == 0:
        c = images.channels
        return (0.5,) * c, (0.25,) * c
    k = min(n, max(1, int(max_images)))
    idx = np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))
    total: torch.Tensor | None = None
    squares: torch.Tensor | None = None
    count = 0
    for batch in _batches(images, idx):
        b = batch.to(torch.int64)
        s1 = b.sum(dim=(0, 2, 3))
        s2 = (b * b).sum(dim=(0, 2, 3))
        total = s1 if total is None else total + s1
        squares = s2 if squares is None else squares + s2
        count += b.shape[0] * b.shape[2] * b.shape[3]
    assert total is not None and squares is not None  # idx holds at least one image
    mean = total.double() / count / 255.0
    var = squares.double() / count / 255.0**2 - mean**2
    std = var.clamp_min(0).sqrt()
    return tuple(float(m) for m in mean), tuple(max(float(s), 1e-6) if math.isfinite(s) else 1.0 for s in std)


def _batches(images: ImageSet, idx: np.ndarray) -> Iterator[torch.Tensor]:
    """uint8 (b, C, H, W) chunks of the images at `idx`, a few million pixels at a time."""
    if images.images is not None:
        per = max(1, 2**22 // max(1, images.images[0].numel()))
        t = torch.from_numpy(idx)
        for lo in range(0, len(idx), per):
            yield images.images[t[lo:lo + per]]
        return
    for x, _ in make_loader(images.subset(idx), batch_size=64, shuffle=False):
        yield x
