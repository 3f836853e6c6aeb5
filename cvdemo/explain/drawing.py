"""Pictures of maps: a map scaled for display, a model input back to pixels, a heat map over a photo."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from cvdemo.errors import ConfigError

if TYPE_CHECKING:
    from PIL import Image

    from cvdemo.predict import Classifier


def unit_heat(heat: np.ndarray) -> np.ndarray:
    """The positive part of a map scaled to [0, 1] by its 99.5th percentile (robust to a few hot pixels)."""
    h = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    top = float(np.percentile(h, 99.5)) if h.size else 0.0
    if top <= 0:
        top = float(h.max()) if h.size else 0.0
    return (h / top).clip(0, 1) if top > 0 else np.zeros_like(h)


def input_to_rgb(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """A model input (1, C, H, W) back to displayable uint8 (H, W, 3), undoing the normalisation."""
    t = x.detach().float().cpu()[0]
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    img = (t * s + m).clamp(0, 1)
    if img.shape[0] == 1:
        img = img.repeat(3, 1, 1)
    return (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def model_view(classifier: Classifier, image: Image.Image) -> Image.Image:
    """The part of a PIL image the classifier looks at (its centre square for ImageNet models), in RGB."""
    img = image.convert("RGB")
    if getattr(classifier, "center_crop", False):
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    return img


def overlay(image: Image.Image | np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """The heat map (positive part, resized bilinearly) coloured with `cmap` and blended over the image.

    `image`: a PIL image or uint8 array (H, W[, C]); returns a PIL RGB image of the image's size,
    pixel = (1 - alpha) * image + alpha * colour.
    """
    from matplotlib import colormaps
    from PIL import Image

    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must lie between 0 and 1, not {alpha}")
    if isinstance(image, Image.Image):
        base = np.asarray(image.convert("RGB"), dtype=np.float32)
    else:
        a = np.asarray(image)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        base = np.stack([a] * 3, axis=-1).astype(np.float32) if a.ndim == 2 else a[:, :, :3].astype(np.float32)
    h, w = base.shape[:2]
    unit = unit_heat(heat)
    if unit.shape != (h, w):
        unit = np.asarray(Image.fromarray(unit.astype(np.float32)).resize((w, h), Image.Resampling.BILINEAR)).clip(0, 1)
    colour = colormaps[cmap](unit)[:, :, :3] * 255.0
    out = (1.0 - alpha) * base + alpha * colour
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
