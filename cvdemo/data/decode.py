"""Image decoding: bytes -> an upright 8-bit PIL image, or a DataError that says why not.

Pillow reads only the header in `Image.open`, so the pixel count is checked before any
pixel is decoded (decompression bombs). Everything a camera, an editor or a web page can
produce is normalised to "L" or "RGB": palettes, transparency (composited on white),
CMYK, 16-bit and float greys, EXIF orientation, animated GIFs (first frame).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cvdemo import limits
from cvdemo.errors import DataError

MAX_PIXELS = limits.DEFAULT_MAX_PIXELS  # the default; $CVDEMO_MAX_PIXELS changes it (see cvdemo.limits)

# Header modes that hold no colour: such images decode to one channel.
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

# Pillow warns about images of 89-179 million pixels before any check of ours can run; we refuse them
# (MAX_PIXELS) with a DataError, so the warning is noise. A filter set once, because
# warnings.catch_warnings() per image is not thread-safe (the app decodes in server threads).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_OPEN_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError,
                MemoryError, Image.DecompressionBombError)


def decode_image(data: bytes, name: str, *, mode: str = "RGB", max_pixels: int | None = None) -> Image.Image:
    """Decode image file bytes into an upright PIL image in `mode` ("RGB" or "L"), 8 bits per channel.

    `name` is only used in error messages. Raises DataError when the bytes are not a readable
    image (empty, truncated, not an image at all) or when width*height exceeds `max_pixels`,
    checked from the header before any pixel is decoded (None: `limits.max_pixels()`).
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    return finish_decode(open_header(data, name, max_pixels=max_pixels), name, mode)


def open_header(data: bytes, name: str, *, max_pixels: int | None = None) -> Image.Image:
    """Parse only the header of an image (size, mode); DataError if unreadable or too many pixels."""
    if max_pixels is None:
        max_pixels = limits.max_pixels()
    if not data:
        raise DataError(f"{name} is not a readable image (the file is empty): replace or remove it")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise DataError(f"{name} has too many pixels to decode safely (a decompression bomb?): "
                        f"shrink it below {max_pixels:,} pixels or remove it") from None
    except UnidentifiedImageError:
        raise DataError(f"{name} is not a readable image ({_sniff(data)}): replace or remove it") from None
    except _OPEN_ERRORS as e:
        raise DataError(f"{name} is not a readable image ({_reason(e)}): replace or remove it") from None
    w, h = img.size
    if w * h > max_pixels:
        raise DataError(f"{name} is {w}x{h} pixels, more than the {max_pixels:,} allowed "
                        f"(a decompression bomb?): shrink it or remove it")
    if w < 1 or h < 1:
        raise DataError(f"{name} is not a readable image (it has no pixels): replace or remove it")
    return img


def is_gray(img: Image.Image) -> bool:
    """True when the (header-only) image holds no colour."""
    return img.mode in GRAY_MODES


def finish_decode(img: Image.Image, name: str, mode: str, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode the pixels of an image opened by `open_header`: first frame, upright, in `mode`.

    `draft` (w, h) lets JPEG decode at a reduced scale that is still at least that big (much
    faster when the image will be shrunk anyway).
    """
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)
        if draft is not None and img.format == "JPEG":
            img.draft(None, draft)
        img.load()
        if _may_be_rotated(img):
            ImageOps.exif_transpose(img, in_place=True)
        return to_mode(img, mode)
    except _OPEN_ERRORS as e:
        raise DataError(f"{name} is not a readable image ({_reason(e)}): replace or remove it") from None


def to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Any PIL image -> 8-bit "L" or "RGB": 16-bit/float greys rescaled, transparency on white."""
    src = img.mode
    if src in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit data (PNG greys come as I;16 or I): map 0..65535 onto 0..255, rounding.
        a: np.ndarray = np.asarray(img).astype(np.int64)
        a = (np.clip(a, 0, 65535) * 255 + 32767) // 65535
        img = Image.fromarray(a.astype(np.uint8), "L")
    elif src == "F":
        a = np.asarray(img, dtype=np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    elif src == "1":
        img = img.convert("L")
    elif src == "P" or src == "PA":
        img = img.convert("RGBA" if src == "PA" or "transparency" in img.info else "RGB")
    elif src in ("RGBa", "La"):
        img = img.convert("RGBA" if src == "RGBa" else "LA")
    elif src not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...

    if img.mode in ("RGBA", "LA"):
        base = "L" if img.mode == "LA" else "RGB"
        canvas = Image.new(base, img.size, 255 if base == "L" else (255, 255, 255))
        canvas.paste(img.convert(base), mask=img.getchannel("A"))
        img = canvas
    if img.mode != mode:
        img = img.convert(mode)
    return img


def _may_be_rotated(img: Image.Image) -> bool:
    """False when the image certainly has no orientation tag (skips the costly EXIF parse for plain files)."""
    if img.format not in ("JPEG", "PNG", "WEBP", "GIF", "BMP"):
        return True  # TIFF keeps orientation among its own tags, MPO and others: let Pillow look
    info = img.info
    return any(k in info for k in ("exif", "xmp", "XML:com.adobe.xmp", "Raw profile type exif"))


def _sniff(data: bytes) -> str:
    head = data[:512].lstrip()
    if head.startswith(b"<"):
        return "it is an HTML or XML page, not an image"
    if head.startswith((b"{", b"[")):
        return "it is a JSON or text file, not an image"
    try:
        data[:512].decode("utf-8")
        return "it is a text file, not an image"
    except UnicodeDecodeError:
        return "not an image, or a format Pillow cannot read"


def _reason(e: BaseException) -> str:
    text = str(e)
    if "truncated" in text.lower() or isinstance(e, EOFError):
        return "the file is truncated or damaged"
    if isinstance(e, MemoryError):
        return "not enough memory to decode it"
    text = text.split(" <_io.")[0].strip() or type(e).__name__
    return text[:120]
