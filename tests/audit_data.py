"""A small image folder with known, planted problems, for the data audit's tests (core, app and browser).

    planted = planted_folder(tmp_path)        # Planted: the folder and where each problem was put

Two well-separated classes of 48x48 pictures, each different from the others (random texture, position
and size): "discs" (a warm disc) and "squares" (a cool square), in train/ and test/, and:
- the same file, byte for byte, as train/discs/twin.png and test/squares/twin.png (leakage, two labels);
- train/squares/near_a.png and its copy resized to 40x40 and re-encoded as JPEG (quality 90), train/squares/near_b.jpg;
- three discs filed under train/squares/ (swapped labels);
- a blank grey image, a 2x2 image, and a file that is not an image at all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIDE = 48


@dataclass
class Planted:
    root: Path
    exact: tuple[str, str] = ("train/discs/twin.png", "test/squares/twin.png")
    near: tuple[str, str] = ("train/squares/near_a.png", "train/squares/near_b.jpg")
    swapped: list[str] = field(default_factory=list)
    blank: str = "train/discs/blank.png"
    tiny: str = "train/squares/tiny.png"
    unreadable: str = "train/discs/broken.png"


def picture(kind: str, rng: np.random.Generator) -> Image.Image:
    """A disc on a warm texture ("discs") or a square on a cool one ("squares"), of random size and place; the
    texture is three sine gratings of random frequency, direction and colour, so no two pictures look alike."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    pixels = np.zeros((SIDE, SIDE, 3))
    for _ in range(3):
        f, angle, phase = rng.uniform(1, 6), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * f * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        pixels += wave[..., None] * rng.uniform(-25, 25, 3)
    tone = rng.uniform((150, 50, 10), (230, 120, 70)) if kind == "discs" else rng.uniform((10, 70, 150), (70, 150, 230))
    img = Image.fromarray(np.clip(pixels + tone, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(SIDE // 4, int(SIDE * 0.4)))
    cx, cy = (int(v) for v in rng.integers(r + 1, SIDE - r - 1, 2))
    if kind == "discs":
        colour = (int(rng.integers(200, 256)), int(rng.integers(60, 140)), int(rng.integers(0, 60)))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        colour = (int(rng.integers(0, 60)), int(rng.integers(100, 200)), int(rng.integers(200, 256)))
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    return img


def planted_folder(root: Path, per_class: int = 24, seed: int = 0) -> Planted:
    """Write the folder under `root` / "shapes" and return where each planted problem is."""
    rng = np.random.default_rng(seed)
    base = root / "shapes"
    planted = Planted(base)
    for split, count in (("train", per_class), ("test", per_class // 3)):
        for kind in ("discs", "squares"):
            (base / split / kind).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                picture(kind, rng).save(base / split / kind / f"{kind[:-1]}_{i:03d}.png")
    for k in range(3):  # discs filed as squares
        name = f"train/squares/swapped_{k}.png"
        picture("discs", rng).save(base / name)
        planted.swapped.append(name)
    twin = io.BytesIO()
    picture("discs", rng).save(twin, format="PNG")
    for name in planted.exact:
        (base / name).write_bytes(twin.getvalue())
    near = picture("squares", rng)
    near.save(base / planted.near[0])
    near.resize((40, 40), Image.Resampling.BILINEAR).save(base / planted.near[1], format="JPEG", quality=90)
    Image.new("RGB", (SIDE, SIDE), (128, 128, 128)).save(base / planted.blank)
    Image.fromarray(rng.integers(0, 256, (2, 2, 3)).astype(np.uint8)).save(base / planted.tiny)
    (base / planted.unreadable).write_bytes(b"this is a text file, not a picture\n")
    return planted
