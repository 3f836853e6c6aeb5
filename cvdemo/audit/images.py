"""Cheap checks on each image, and on the class balance: no model involved.

From the file (folders and zips): unreadable, tiny, extreme aspect ratio, and a content hash for exact
duplicates. From the decoded pixels (every source): blank / near-constant, grey in a colour set.
None of these is scored by cleanlab (it has no such checks outside Datalab's image extension), so they
are ours; the thresholds are below, each with its reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from cvdemo.audit.findings import Finding, Item
from cvdemo.data.decode import open_header
from cvdemo.errors import DataError

__all__ = ["BLANK_STD", "TINY_SIDE", "ASPECT_LIMIT", "GREY_SPREAD", "SMALL_CLASS", "PixelStats", "FileFacts",
           "pixel_stats", "file_facts", "image_findings", "balance_findings"]

BLANK_STD = 4.0        # pixel std (0-255 levels) below which an image is near-constant: a blank scan, a black frame
TINY_SIDE = 16         # an image whose shorter side is below this many pixels ...
TINY_FRACTION = 0.5    # ... and below this fraction of the data set's median shorter side is "tiny"
ASPECT_LIMIT = 3.0     # longer side / shorter side above this: a banner or a strip, squashed when resized
GREY_SPREAD = 1.5      # mean |R-G| + |G-B| (levels) below which a colour-set image is grey (JPEG leaves a little)
SMALL_CLASS = 0.5      # a class with fewer images than this fraction of the median class is flagged


@dataclass
class PixelStats:
    """Per image of a split, from the decoded uint8 pixels: std over all pixels and channel spread."""
    std: np.ndarray        # float (N,)
    spread: np.ndarray     # float (N,), 0 for one-channel images

    @staticmethod
    def empty() -> PixelStats:
        return PixelStats(np.zeros(0), np.zeros(0))


def pixel_stats(batch: np.ndarray) -> PixelStats:
    """uint8 (B, C, H, W) -> the batch's PixelStats."""
    x = batch.astype(np.float32)
    std = x.reshape(len(x), -1).std(axis=1)
    if x.shape[1] == 3:
        spread = (np.abs(x[:, 0] - x[:, 1]) + np.abs(x[:, 1] - x[:, 2])).reshape(len(x), -1).mean(axis=1)
    else:
        spread = np.zeros(len(x), np.float32)
    return PixelStats(std, spread)


@dataclass
class FileFacts:
    """What the file says before its pixels are decoded: size (w, h) and a hash of its bytes."""
    width: int
    height: int
    digest: str


def file_facts(data: bytes, name: str) -> FileFacts:
    """Hash and header of one file's bytes; DataError when the header cannot be read."""
    img = open_header(data, name)
    w, h = img.size
    return FileFacts(int(w), int(h), hashlib.blake2b(data, digest_size=16).hexdigest())


def image_findings(items: list[Item], stats: PixelStats, facts: list[FileFacts | None], colour: bool) -> list[Finding]:
    """Blank, grey-in-colour, tiny and extreme-aspect findings for `items` (aligned with `stats` and `facts`;
    a fact is None for built-in sets, which have no files)."""
    out: list[Finding] = []
    for i, item in enumerate(items):
        std = float(stats.std[i])
        if std < BLANK_STD:
            out.append(Finding("blank", 1.0 - std / BLANK_STD / 2, [item],
                               f"almost one colour: pixel std {std:.1f} of 255 levels (below {BLANK_STD:g})"))
        if colour and float(stats.spread[i]) < GREY_SPREAD and std >= BLANK_STD:
            out.append(Finding("grayscale", 0.5, [item], "a grey image in a colour data set"))
    sides = [min(f.width, f.height) for f in facts if f is not None]
    if sides:
        median = float(np.median(sides))
        for item, f in zip(items, facts, strict=True):
            if f is None:
                continue
            side, ratio = min(f.width, f.height), max(f.width, f.height) / max(1, min(f.width, f.height))
            if side < TINY_SIDE and side < TINY_FRACTION * median:
                out.append(Finding("tiny", 1.0 - side / TINY_SIDE / 2, [item],
                                   f"{f.width}×{f.height} pixels, the median image is {median:.0f} px on its short side"))
            if ratio > ASPECT_LIMIT:
                out.append(Finding("aspect_ratio", min(1.0, ratio / (4 * ASPECT_LIMIT)), [item],
                                   f"{f.width}×{f.height} pixels: {ratio:.1f} times as long as it is wide"))
    return out


def balance_findings(classes: list[str], counts: dict[str, list[int]]) -> list[Finding]:
    """A `small_class` finding for each class with fewer images (all splits) than SMALL_CLASS x the median class."""
    totals = np.sum([counts[s] for s in counts], axis=0) if counts else np.zeros(len(classes))
    if len(totals) < 2:
        return []
    median = float(np.median(totals))
    out = []
    for name, n in zip(classes, totals, strict=True):
        if n < SMALL_CLASS * median:
            out.append(Finding("small_class", 1.0 - float(n) / median, [],
                               f"class {name!r} has {int(n)} images, the median class {median:.0f}: "
                               "the model will see it rarely and its test numbers rest on few images"))
    return out


def unreadable_findings(skipped: list[tuple[str, str | None]]) -> list[Finding]:
    """One finding per file the loader could not decode, given as (shown path, path inside the folder or
    zip); the loader does not keep its one-sentence reason."""
    return [Finding("unreadable", 1.0, [Item(None, None, None, path, file)], "cannot be decoded as an image")
            for path, file in skipped]


def safe_facts(data: bytes, name: str) -> FileFacts | None:
    """file_facts, or None when the header cannot be read (the loader lists such files as unreadable)."""
    try:
        return file_facts(data, name)
    except DataError:
        return None
