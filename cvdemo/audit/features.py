"""The audit's one pass over the data: load every split as `train` would, run the frozen pretrained backbone
over each image once (the trainer's feature-cache path), and on the way note each image's pixel statistics
and, for folders and zips, its file's header and hash.

    data = load_audit_data("photos.zip", model="efficientnet_lite0")
    data.features        # float32 (N, D): the head's input for every image, train then val then test
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cvdemo.audit.findings import Item
from cvdemo.audit.images import FileFacts, PixelStats, pixel_stats, safe_facts
from cvdemo.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cvdemo.data.archive import DirReader, ImageReader, ZipReader
from cvdemo.data.dataset import check_source, is_builtin
from cvdemo.errors import DataError
from cvdemo.progress import phase

__all__ = ["SPLITS", "AuditData", "load_audit_data", "item_picture"]

SPLITS = ("train", "val", "test")


@dataclass
class AuditData:
    """Every image of a data set, in one order (train, val, test): where it is, its label, its features."""
    source: str
    model: str
    image_size: int
    classes: list[str]
    items: list[Item]
    labels: np.ndarray                 # int64 (N,)
    features: np.ndarray               # float32 (N, D)
    stats: PixelStats
    facts: list[FileFacts | None]      # None for built-in sets (no files) and unreadable headers
    digests: list[str]                 # a content hash per image: of the file, or of the pixels for built-ins
    skipped: list[tuple[str, str | None]]   # unreadable files: (shown path, path inside the folder or zip)
    channels: int
    counts: dict[str, list[int]]
    bundle: Any = None                 # the DataBundle, to draw the images
    seconds: dict[str, float] = field(default_factory=dict)


def audit_config(source: str, *, model: str, image_size: int | None, limit: int | None, seed: int,
                 val_fraction: float, test_fraction: float, device: str) -> RunConfig:
    """The frozen-backbone run config whose data and features the audit reads (the splits `train` makes
    of the same source with the same seed and fractions)."""
    return RunConfig(data=DataConfig(source=source, val_fraction=val_fraction, test_fraction=test_fraction,
                                     limit_train=limit, limit_test=limit, image_size=image_size, skip_bad=True),
                     model=ModelConfig(name=model, pretrained=True, freeze="backbone"),
                     train=TrainConfig(seed=seed, device=device))


def load_audit_data(source: str, *, model: str = "efficientnet_lite0", image_size: int | None = None,
                    limit: int | None = None, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2,
                    device: str = "auto", batch_size: int = 128) -> AuditData:
    """Load `source` (unreadable files skipped and listed) and compute everything the audit scores.
    `limit`: at most this many training images and this many validation and test images each (stratified)."""
    from cvdemo import runs
    from cvdemo.device import amp_dtype
    from cvdemo.models.registry import get_module
    from cvdemo.train.feature_cache import head_inputs
    from cvdemo.train.setup import build_setup

    if not is_builtin(source):
        check_source(source)
    config = audit_config(source, model=model, image_size=image_size, limit=limit, seed=seed,
                          val_fraction=val_fraction, test_fraction=test_fraction, device=device)
    clock = time.perf_counter()
    setup = build_setup(config)
    bundle = setup.bundle
    loaded = time.perf_counter()
    head = get_module(setup.model, setup.spec.head)
    amp = amp_dtype("auto", setup.device)
    splits = [(name, getattr(bundle, name)) for name in SPLITS]
    total = sum(len(s) for _, s in splits)
    feats, stats = [], []
    with phase("features", "computing the frozen backbone's features", total) as meter:
        for _, images in splits:
            if len(images) == 0:
                continue
            # read from / kept in the runs' feature store, shared with `train --freeze backbone` on the same data
            feats.append(head_inputs(setup, images, head, amp, batch_size=batch_size, meter=meter,
                                     on_images=lambda x: stats.append(pixel_stats(x.numpy())),
                                     runs_root=runs.default_root()).cpu().numpy())
    extracted = time.perf_counter()
    items, labels, digests, facts = _describe(source, bundle, splits)
    features = np.concatenate(feats).astype(np.float32) if feats else np.zeros((0, 1), np.float32)
    joined = PixelStats(np.concatenate([s.std for s in stats]), np.concatenate([s.spread for s in stats])) \
        if stats else PixelStats.empty()
    counts = {name: images.class_counts(len(bundle.classes)) for name, images in splits}
    return AuditData(source, setup.spec.name, setup.image_size, list(bundle.classes), items, labels, features,
                     joined, facts, digests, _skipped(source, bundle.skipped), bundle.channels, counts, bundle,
                     {"load": loaded - clock, "features": extracted - loaded, "files": time.perf_counter() - extracted})


def _describe(source: str, bundle: Any, splits: list) -> tuple[list[Item], np.ndarray, list[str], list]:
    """Items, labels, content hashes and file facts for every image, in the features' order."""
    import hashlib

    reader = None if is_builtin(source) else _reader(Path(source).expanduser())
    items: list[Item] = []
    digests: list[str] = []
    facts: list[FileFacts | None] = []
    labels = []
    with phase("hash", "reading the files' headers and hashes", sum(len(s) for _, s in splits), after=1.0) as meter:
        for split, images in splits:
            for i in range(len(images)):
                y = int(images.labels[i])
                labels.append(y)
                if reader is None or images.names is None:
                    items.append(Item(split, i, bundle.classes[y], f"{bundle.name} {split} #{i}"))
                    pixels = images[i][0].numpy()
                    digests.append(hashlib.blake2b(pixels.tobytes() + str(pixels.shape).encode(),
                                                   digest_size=16).hexdigest())
                    facts.append(None)
                else:
                    name = images.names[i]
                    items.append(Item(split, i, bundle.classes[y], reader.display(reader.member(name)), name))
                    fact = safe_facts(reader.read(reader.member(name)), name)
                    facts.append(fact)
                    digests.append(fact.digest if fact else f"unreadable:{name}")
                meter.add(1)
    return items, np.asarray(labels, dtype=np.int64), digests, facts


def _skipped(source: str, shown: list[str]) -> list[tuple[str, str | None]]:
    """The loader's unreadable files ("ROOT/a/b.png", or "a/b.png in x.zip") with their paths inside the source."""
    root = Path(source).expanduser()
    out: list[tuple[str, str | None]] = []
    for path in shown:
        if root.is_dir() and path.startswith(str(root) + "/"):
            out.append((path, path[len(str(root)) + 1:]))
        elif path.endswith(f" in {root.name}"):
            out.append((path, path[: -len(f" in {root.name}")]))
        else:
            out.append((path, None))
    return out


def _reader(path: Path) -> ImageReader:
    if path.is_dir():
        return DirReader(path)
    if path.is_file():
        reader = ZipReader(path)
        reader.list()
        return reader
    raise DataError(f"{path} is neither a folder nor a .zip file: point to an image folder or a zip of one")


def item_picture(bundle: Any, item: Item) -> Image.Image | None:
    """The picture of one audited image as the loader holds it (at the loaded size), or None when it has
    none (an unreadable file)."""
    if bundle is None or item.split is None or item.index is None:
        return None
    x = getattr(bundle, item.split)[item.index][0].numpy()
    return Image.fromarray(x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0))
