"""Small helpers the family modules share to describe layer groups, and common constants."""

from __future__ import annotations

from collections.abc import Iterable

# The normalisation torchvision's ImageNet weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Weights ported from TensorFlow expect pixels scaled to [-1, 1].
HALF = (0.5, 0.5, 0.5)


def span(prefix: str, start: int, stop: int) -> tuple[str, ...]:
    """Dotted paths `prefix.start` .. `prefix.(stop-1)`: a run of layers in a Sequential or ModuleList."""
    return tuple(f"{prefix}.{i}" for i in range(start, stop))


def split_after(prefix: str, length: int, ends: Iterable[int]) -> list[tuple[str, ...]]:
    """Split `prefix.0 .. prefix.(length-1)` into runs that end at (and include) each index in `ends`."""
    runs, start = [], 0
    for end in sorted(ends):
        runs.append(span(prefix, start, end + 1))
        start = end + 1
    if start < length:
        runs.append(span(prefix, start, length))
    return runs
