"""What the model will see: training images before and after augmentation (and mixup/cutmix).

    before, after = augmented_samples(config, 16)        # uint8 (16, C, H, W) each
    previews = preset_previews(config, 6, bundle)         # {"original", every preset, "yours"}: numpy uint8
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cvdemo.config import RunConfig
from cvdemo.data import AUGMENT_PRESETS, DataBundle, train_transform
from cvdemo.train.setup import load_data
from cvdemo.train.trainer import mix_batch

if TYPE_CHECKING:
    from PIL import Image


def augmented_samples(config: RunConfig, n: int = 16,
                      bundle: DataBundle | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(before, after): uint8 (n, C, H, W) training images and the same images as training sees them.

    The images are a fixed spread over the training set; augmentation and mixing use the run's seed.
    """
    if bundle is None:
        bundle = load_data(config)
    train = bundle.train
    n = max(1, min(n, len(train)))
    idx = torch.linspace(0, len(train) - 1, n).long().tolist()
    before = torch.stack([train[i][0] for i in idx])
    transform = train_transform(config.data.augment, (before.shape[-2], before.shape[-1]))
    torch.manual_seed(config.train.seed)
    after = torch.stack([transform(x) for x in before]) if transform is not None else before.clone()
    t = config.train
    if t.mixup > 0 or t.cutmix > 0:
        labels = torch.tensor([train[i][1] for i in idx])
        mixed, _, _, _ = mix_batch(after.float() / 255, labels, t.mixup, t.cutmix)
        after = (mixed * 255).round().clamp(0, 255).to(torch.uint8)
    return before, after


def preset_previews(config: RunConfig, n: int, bundle: DataBundle) -> dict[str, np.ndarray]:
    """The same `n` training images under every augmentation preset, and as `config` trains on them.

    {"original": uint8 (n, C, H, W) before augmentation, preset: those images after that preset alone
    (no mixup or cutmix), "yours": after `config`'s own augmentation, mixup and cutmix included}.
    Seeded with the run's seed inside a forked generator: torch's global random state is left as it was.
    """
    out: dict[str, np.ndarray] = {}
    with torch.random.fork_rng(devices=[]):
        for preset in AUGMENT_PRESETS:
            alone = config.replace(data={"augment": preset}, train={"mixup": 0.0, "cutmix": 0.0})
            before, after = augmented_samples(alone, n, bundle=bundle)
            out["original"], out[preset] = before.numpy(), after.numpy()
        out["yours"] = augmented_samples(config, n, bundle=bundle)[1].numpy()
    return out


def to_grid(images: torch.Tensor, columns: int = 8, cell: int = 96, gap: int = 4) -> Image.Image:
    """uint8 (N, C, H, W) -> one PIL image, each cell at least `cell` pixels (nearest-neighbour upscaling
    keeps 8x8 digits crisp on a projector)."""
    from PIL import Image

    n, c, h, w = images.shape
    scale = max(1, cell // max(h, w))
    rows = -(-n // columns)
    cols = min(columns, n)
    grid = Image.new("RGB", (cols * (w * scale + gap) + gap, rows * (h * scale + gap) + gap), "white")
    for i, img in enumerate(images):
        arr = img.permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[..., 0] if c == 1 else arr).convert("RGB")
        pil = pil.resize((w * scale, h * scale), Image.Resampling.NEAREST)
        r, k = divmod(i, columns)
        grid.paste(pil, (gap + k * (w * scale + gap), gap + r * (h * scale + gap)))
    return grid


def preview_grid(config: RunConfig, out: str | Path, n: int = 16) -> Path:
    """Write a PNG: the original images on top, the augmented ones below."""
    from PIL import Image, ImageDraw

    before, after = augmented_samples(config, n)
    top, bottom = to_grid(before), to_grid(after)
    label_h = 24
    canvas = Image.new("RGB", (top.width, top.height + bottom.height + 2 * label_h), "white")
    draw = ImageDraw.Draw(canvas)
    mix = " + mixup" if config.train.mixup else ""
    mix += " + cutmix" if config.train.cutmix else ""
    draw.text((6, 5), "original training images", fill="black")
    canvas.paste(top, (0, label_h))
    draw.text((6, top.height + label_h + 5), f"as the model sees them: augment={config.data.augment}{mix}",
              fill="black")
    canvas.paste(bottom, (0, top.height + 2 * label_h))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
