"""A drawing on a canvas -> the image a network trained on digits expects, made the way its data was made.

    picture = drawing_image(canvas_rgba, "digits")   # PIL "L" 8x8, 17 grey levels, like scikit-learn's digits
    x = prepare_image(picture, size=32, mean=mean, std=std, channels=1)   # the run's own resize and normalisation

Two conventions, one per family of data sets:

    digits  scikit-learn's 8x8 digits (UCI optdigits): thin strokes widened to the data set's pen, the ink's
            bounding box scaled, aspect ratio kept, to fill a 32x32 bitmap, centred; the bitmap is cut into 4x4
            blocks and each block's ink pixels counted (0..16 grey levels)
    mnist   MNIST, Fashion-MNIST: the ink's bounding box scaled, aspect ratio kept, to fit a 20x20 box (grey,
            antialiased), placed in 28x28 with its centre of mass at the centre

No library does either for a canvas array (torchvision's transforms neither crop to ink nor centre by mass),
so these few lines are ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from cvdemo.data.builtin import DIGITS_LEVELS, digit_counts_to_pixels
from cvdemo.errors import DataError
from cvdemo.runs import read_json_or_empty

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

STYLES = ("digits", "mnist")
GREY_SOURCES = ("digits", "mnist", "fashion-mnist")  # built-in grey data sets with ten classes each
DRAWABLE_CLASSES = 20   # a run with more classes is no "draw a digit" toy
INK_THRESHOLD = 0.1     # a canvas pixel darker than this (0 = background, 1 = full ink) is not ink
BITMAP = 32             # the digits' 32x32 bitmaps, 4x4 blocks per 8x8 pixel
BIT_THRESHOLD = 0.35    # a bitmap pixel is "on" when at least this much of it is ink (antialiased edges)
# bitmap pixels a thin stroke is widened to: of 3.5 to 6, tried on tests/test_drawing.py's digits drawn with pens of
# 6 to 40 canvas pixels, 5 let a digits LeNet read the most (9-10 of 10; thicker strokes close the loops of 0 and 3)
DIGIT_STROKE = 5.0
MNIST_BOX, MNIST_SIZE = 20, 28
EMPTY = "the canvas is empty: draw a digit on it with the mouse (or a finger) first"


def drawing_style(source: str) -> str:
    """The convention for a run's data source: "digits" for the built-in 8x8 digits, else "mnist" (28x28, which
    the run's own preprocessing then resizes to its input size)."""
    return "digits" if source == "digits" else "mnist"


def run_drawing_style(run_dir: str | Path) -> str | None:
    """The drawing style of a run whose data is digits-like (grey images, at most DRAWABLE_CLASSES classes), from
    its summary.json (a run still training: its data source, when built in), or None for any other run."""
    run_dir = Path(run_dir)
    data = read_json_or_empty(run_dir / "summary.json").get("data")
    source = str(read_json_or_empty(run_dir / "config.json").get("data", {}).get("source", ""))
    if isinstance(data, dict) and "channels" in data:
        grey = data.get("channels") == 1 and 0 < len(data.get("classes") or []) <= DRAWABLE_CLASSES
        return drawing_style(source) if grey else None
    return drawing_style(source) if source in GREY_SOURCES else None


def ink(canvas: np.ndarray) -> np.ndarray:
    """A canvas (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA array (uint8 0..255 or float 0..1) -> float32 (H, W)
    ink in [0, 1]: 0 background, 1 full stroke. Transparent pixels are background; a light background with dark
    strokes is inverted, so black-on-white and white-on-black drawings read alike."""
    a = np.asarray(canvas)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or min(a.shape[:2]) < 1:
        raise DataError(f"a drawing must be a grey, RGB or RGBA picture, not an array of shape {a.shape}")
    scale = 255.0 if a.dtype == np.uint8 or float(np.nanmax(a, initial=0)) > 1.0 else 1.0
    a = np.nan_to_num(a.astype(np.float32) / scale).clip(0, 1)
    if a.ndim == 2:
        grey, alpha = a, np.ones_like(a)
    else:
        grey = a[:, :, :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        alpha = a[:, :, 3] if a.shape[2] == 4 else np.ones_like(grey)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    border_alpha = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    light_background = float(np.median(border[border_alpha > 0.5])) > 0.5 if (border_alpha > 0.5).any() else False
    if light_background:
        grey = 1.0 - grey
    return (grey * alpha).astype(np.float32)


def ink_box(strokes: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the ink, right and bottom exclusive; DataError when there is none."""
    rows = np.flatnonzero((strokes > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((strokes > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        raise DataError(EMPTY)
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _fit(strokes: np.ndarray, box: int) -> np.ndarray:
    """The ink's bounding box scaled (aspect ratio kept, area-averaged) so its longer side is `box` pixels, centred
    in a box x box float array."""
    left, top, right, bottom = ink_box(strokes)
    crop = strokes[top:bottom, left:right]
    h, w = crop.shape
    side = max(h, w)
    new_w, new_h = max(1, round(w * box / side)), max(1, round(h * box / side))
    scaled = np.asarray(Image.fromarray(crop, "F").resize((new_w, new_h), Image.Resampling.BOX), dtype=np.float32)
    out = np.zeros((box, box), dtype=np.float32)
    x0, y0 = (box - new_w) // 2, (box - new_h) // 2
    out[y0:y0 + new_h, x0:x0 + new_w] = scaled.clip(0, 1)
    return out


def stroke_width(mask: np.ndarray) -> float:
    """The average width in pixels of the strokes in a boolean mask: twice the area over the outline's length
    (a band of length L and width w has area L*w and an outline of about 2*L)."""
    padded = np.pad(mask, 1)
    outline = int(np.count_nonzero(padded[1:] != padded[:-1])) + int(np.count_nonzero(padded[:, 1:] != padded[:, :-1]))
    return 2.0 * float(mask.sum()) / max(outline, 1)


def thicken(strokes: np.ndarray, target: float = DIGIT_STROKE) -> np.ndarray:
    """The ink with its strokes widened (never thinned) so that, once its bounding box is scaled to the 32-pixel
    bitmap, they are about `target` bitmap pixels wide, as the pens of the digits' forms were; a thin mouse
    pen otherwise draws digits the network has never seen. Dilation by a disc, through a distance transform."""
    from scipy.ndimage import distance_transform_edt  # type: ignore[import-untyped]

    mask = strokes > 0.5
    if not mask.any():
        return strokes
    left, top, right, bottom = ink_box(strokes)
    side, width = max(right - left, bottom - top), stroke_width(mask)
    # grow by r on each side: (width + 2r) / (side + 2r) * BITMAP == target
    r = (target * side - BITMAP * width) / (2.0 * (BITMAP - target))
    if r < 1.0:
        return strokes
    pad = int(np.ceil(r)) + 1
    grown = distance_transform_edt(~np.pad(mask, pad)) <= r
    return np.maximum(np.pad(strokes, pad), grown.astype(np.float32))


def digits_image(strokes: np.ndarray) -> Image.Image:
    """Ink (H, W) in [0, 1] -> an 8x8 "L" image like scikit-learn's digits: 17 grey levels stored as 0..255."""
    bits = _fit(thicken(strokes), BITMAP) >= BIT_THRESHOLD
    block = BITMAP // 8
    counts = bits.reshape(8, block, 8, block).sum(axis=(1, 3))  # 0..16 ink pixels per 4x4 block
    assert counts.max() <= DIGITS_LEVELS
    return Image.fromarray(digit_counts_to_pixels(counts), "L")


def mnist_image(strokes: np.ndarray) -> Image.Image:
    """Ink (H, W) in [0, 1] -> a 28x28 "L" image by the MNIST convention: fitted into 20x20, centred by mass."""
    fitted = _fit(strokes, MNIST_BOX)
    total = float(fitted.sum())
    ys, xs = np.indices(fitted.shape)
    cy, cx = float((ys * fitted).sum()) / total, float((xs * fitted).sum()) / total
    out = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    # place the 20x20 box so the centre of mass lands on the centre (14, 14), clipped to stay inside 28x28
    y0 = int(np.clip(round(MNIST_SIZE / 2 - 0.5 - cy), 0, MNIST_SIZE - MNIST_BOX))
    x0 = int(np.clip(round(MNIST_SIZE / 2 - 0.5 - cx), 0, MNIST_SIZE - MNIST_BOX))
    out[y0:y0 + MNIST_BOX, x0:x0 + MNIST_BOX] = fitted
    return Image.fromarray(np.rint(out * 255).clip(0, 255).astype(np.uint8), "L")


def drawing_image(canvas: np.ndarray, style: str = "digits") -> Image.Image:
    """A canvas array (see `ink`) -> the "L" image its data set would hold: 8x8 ("digits") or 28x28 ("mnist").
    DataError when the canvas holds no ink or `style` is unknown."""
    if style not in STYLES:
        raise DataError(f"unknown drawing style {style!r}: choose one of {', '.join(STYLES)}")
    strokes = ink(canvas)
    return digits_image(strokes) if style == "digits" else mnist_image(strokes)


def drawing_input(canvas: np.ndarray, style: str, *, size: int, mean: Sequence[float], std: Sequence[float],
                  channels: int) -> torch.Tensor:
    """A canvas array -> float32 (1, channels, size, size): `drawing_image`, then the run's own resize and
    normalisation (`cvdemo.data.preprocess.prepare_image`, as every image the network is given)."""
    from cvdemo.data.preprocess import prepare_image

    return prepare_image(drawing_image(canvas, style), size=size, mean=mean, std=std, channels=channels)
