"""The JPEG fast path: frame-header parsing and batched decoding with torchvision.

Plain 8-bit Huffman JPEGs (most photo data sets) decode in about a third of Pillow's time
through `torchvision.io.decode_jpeg` (libjpeg-turbo, the same pixels). Anything else, and any
block where torchvision fails, is left to Pillow (`cvdemo.data.decode`), which also words errors.
"""

from __future__ import annotations

import sys

import torch

from cvdemo.errors import DataError

FAST_JPEG_MIN = 20_000          # JPEGs to decode before importing torchvision (~1.5 s) to decode them faster
FAST_JPEG_MIN_IMPORTED = 256    # ... when torchvision is already imported

# Baseline, extended and progressive Huffman JPEG frames: what the fast path decodes.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2})
_ANY_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) of an 8-bit Huffman-coded JPEG from its frame header, else None."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if marker in _ANY_SOF:
            if marker not in _SOF_MARKERS or data[i + 4] != 8:
                return None
            h, w = (data[i + 5] << 8) | data[i + 6], (data[i + 7] << 8) | data[i + 8]
            return w, h, data[i + 9] if i + 9 < n else 0
        if marker in (0xD9, 0xDA):
            return None
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def use_fast_jpeg(names: list[str]) -> bool:
    """Worth importing torchvision (1.5 s or more) to decode many JPEGs in a third of Pillow's time?
    (Measured on 32x32 CIFAR files: ~40 us per file with torchvision, ~120 us with Pillow.)"""
    jpegs = sum(1 for n in names if n[-4:].lower() in (".jpg", "jpeg"))
    if jpegs < (FAST_JPEG_MIN_IMPORTED if "torchvision" in sys.modules else FAST_JPEG_MIN):
        return False
    try:
        import torchvision.io  # noqa: F401  (imported here, before any fork, so that workers share it)
    except Exception:
        return False
    return True


def fast_jpegs(datas: dict[int, bytes | DataError], max_pixels: int) -> dict[int, tuple]:
    """Decode the plain 8-bit grey/colour JPEGs of a block in one torchvision call (libjpeg-turbo, the same
    pixels as Pillow, EXIF orientation applied): {index: (uint8 tensor (c, H, W), (w, h), grey)}. Anything
    else, and the whole block if any of it fails, is left to Pillow, which also words the errors."""
    picks, tensors, info = [], [], []
    for k, data in datas.items():
        if isinstance(data, DataError):
            continue
        head = jpeg_header(data)
        if head is None or head[2] not in (1, 3) or head[0] * head[1] > max_pixels or head[0] * head[1] == 0:
            continue
        picks.append(k)
        tensors.append(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        info.append(head)
    if not picks:
        return {}
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        out = decode_jpeg(tensors, mode=ImageReadMode.UNCHANGED, apply_exif_orientation=True)
    except Exception:  # a damaged file somewhere in the block: Pillow decodes (and explains) one by one
        return {}
    result = {}
    for k, t, (w, h, c) in zip(picks, out, info, strict=True):
        if t.shape[0] == c:
            result[k] = (t, (w, h), c == 1)
    return result
