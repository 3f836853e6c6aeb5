"""Image folders and zip archives in the image-folder layout.

Accepted layouts, at the root or inside a single wrapper folder (`cifar10/train/...`):

    train/<class>/...  +  test/<class>/...   (test may be called val/valid when there is no test;
                                              with both, val/valid is the validation split)
    <class>/...                              (flat: train/val/test are carved out, stratified)

Small splits are decoded once at load time into a uint8 tensor; big ones stay lazy (decoded
on access). The decoding itself (chunks, worker processes) is `cvdemo.data.decode_pool`; the
JPEG fast path is `cvdemo.data.jpeg`.
"""

from __future__ import annotations

import zipfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvdemo import limits
from cvdemo.data.archive import DirReader, ImageReader, ZipReader
from cvdemo.data.decode_pool import decode_chunks
from cvdemo.data.imageset import DataBundle, ImageSet, LazySource
from cvdemo.data.jpeg import use_fast_jpeg
from cvdemo.data.split import stratified_split, stratified_subset
from cvdemo.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MEMORY_BUDGET = 512 * 2**20     # bytes of uint8 pixels a split may hold in memory
DEFAULT_SIZE = 224              # lazy / resized side when the caller gives no image size

_TEST_NAMES = ("test",)
_VAL_NAMES = ("val", "valid", "validation")


@dataclass
class Layout:
    """Class names and, per split present in the folder, (file, label) pairs."""
    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]


def load_folder(path: Path, *, val_fraction: float, test_fraction: float, seed: int,
                limit_train: int | None, limit_test: int | None, image_size: int | None,
                skip_bad: bool, max_pixels: int | None = None, exclude: Sequence[str] = (),
                decode: bool = True) -> DataBundle:
    """Load an image folder or a .zip of one (see the module docstring for the layouts); images over
    `max_pixels` (None: `limits.max_pixels()`) are refused; `exclude`d files are left out (`excluded_names`).
    `decode=False`: no file is opened; every split is lazy over all its files, as listed (none checked or
    skipped, channels taken as 3), for a caller that only needs which files and labels the splits hold
    (`LazySource.fingerprint`)."""
    if max_pixels is None:
        max_pixels = limits.max_pixels()
    if path.is_dir():
        reader: ImageReader = DirReader(path)
    elif path.is_file():
        if not zipfile.is_zipfile(path):
            if path.suffix.lower() == ".zip":
                raise DataError(f"{path} is not a valid zip file: re-create it, or point to a folder")
            raise DataError(f"{path} is neither a folder nor a .zip file: point to an image folder or a zip of one")
        reader = ZipReader(path)
    else:
        raise DataError(f"{path} is neither a folder nor a .zip file: point to an image folder or a zip of one")
    files, dirs = reader.list()
    if exclude:
        drop = excluded_names(exclude)
        files = [f for f in files if f not in drop]
    layout = find_layout(files, dirs, reader.label)

    def pool(split: str) -> tuple[list[str], np.ndarray]:
        pairs = layout.splits[split]
        return [p[0] for p in pairs], np.array([p[1] for p in pairs], dtype=np.int64)

    train_files, train_y = pool("train")
    if "test" in layout.splits:
        test_files, test_y = pool("test")
    else:  # flat: hold out a test split first, then validation from what is left
        test_idx, rest = stratified_split(train_y, [test_fraction], seed)
        test_files, test_y = [train_files[i] for i in test_idx], train_y[test_idx]
        train_files, train_y = [train_files[i] for i in rest], train_y[rest]
    if "val" in layout.splits:
        val_files, val_y = pool("val")
    else:
        val_idx, rest = stratified_split(train_y, [val_fraction], seed)
        val_files, val_y = [train_files[i] for i in val_idx], train_y[val_idx]
        train_files, train_y = [train_files[i] for i in rest], train_y[rest]

    # Limits come before any decoding, with a fixed seed so the held-out subsets never move.
    parts = {}
    for split, (names, y, limit) in {"train": (train_files, train_y, limit_train),
                                     "val": (val_files, val_y, limit_test),
                                     "test": (test_files, test_y, limit_test)}.items():
        keep = stratified_subset(y, limit, 0)
        parts[split] = ([names[i] for i in keep], y[keep])

    size = int(image_size or DEFAULT_SIZE)
    if not decode:
        undecoded = {split: ImageSet(None, y, channels=3, names=names, source=LazySource(
            reader, [reader.member(n) for n in names], size, max_pixels)) for split, (names, y) in parts.items()}
        reader.forget_index()
        return DataBundle(path.name, layout.classes, undecoded["train"], undecoded["val"], undecoded["test"], 3)
    fast = use_fast_jpeg([n for names, _ in parts.values() for n in names])
    decoded = {split: decode_split(reader, names, y, size=size, skip_bad=skip_bad, max_pixels=max_pixels,
                                   fast_jpeg=fast)
               for split, (names, y) in parts.items()}
    reader.forget_index()
    channels = 1 if all(d.gray for d in decoded.values()) else 3
    sets = {split: d.to_imageset(reader, channels) for split, d in decoded.items()}
    skipped = [s for split in ("train", "val", "test") for s in decoded[split].skipped]
    if skipped:  # skipping may have emptied a class (or everything): training on it would mislead
        left = set(np.concatenate([d.labels for d in decoded.values()]).tolist())
        empty = [c for i, c in enumerate(layout.classes) if i not in left]
        if empty:
            raise DataError(f"class {empty[0]!r} in {reader.label} has no readable images left after skipping "
                            f"{len(skipped)} unreadable file{'s' if len(skipped) > 1 else ''} (e.g. {skipped[0]}): "
                            f"replace those files or remove the class folder")
    return DataBundle(path.name, layout.classes, sets["train"], sets["val"], sets["test"], channels, skipped)


def excluded_names(exclude: Sequence[str]) -> set[str]:
    """Relative '/'-separated file names from a config's `exclude` entries, which are URL-encoded so that a
    name with spaces or commas survives a comma-separated form field (urllib.parse.quote, '/' kept)."""
    from urllib.parse import unquote

    return {unquote(e).strip("/") for e in exclude}


def exclude_entries(names: Iterable[str]) -> list[str]:
    """`data.exclude` entries for files of a folder or zip (relative '/'-separated names, as ImageSet.names
    holds them): URL-encoded, '/' kept, sorted, each once; `excluded_names` reads them back."""
    from urllib.parse import quote

    return sorted({quote(name.strip("/"), safe="/") for name in names})


def find_layout(files: Sequence[str], dirs: Sequence[str], label: str) -> Layout:
    """Work out the layout from relative '/'-separated file and folder paths (see module docstring)."""
    paths = [tuple(f.split("/")) for f in files]
    all_dirs = {tuple(d.split("/")) for d in dirs}
    for p in paths:
        all_dirs.update(p[:k] for k in range(1, len(p)))
    kids: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for d in all_dirs:
        kids[d[:-1]].add(d[-1])
    images = [p for p in paths if p[-1].lower().endswith(IMAGE_EXTENSIONS)]
    archives = [f for f in files if f.lower().endswith(".zip")]
    if not images and archives:  # never opened: a zip inside a zip is not read
        raise DataError(f"{label} holds no images, only another zip ({archives[0]}"
                        f"{f' and {len(archives) - 1} more' if len(archives) > 1 else ''}): "
                        f"extract it and give that zip or folder instead")
    if not images:
        raise DataError(f"no image files ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) found in {label}: "
                        f"put images in one folder per class")

    base: tuple[str, ...] = ()
    for _ in range(8):  # step into wrapper folders: a single folder that itself holds folders
        here = kids.get(base, set())
        loose = any(len(p) == len(base) + 1 and p[:len(base)] == base for p in images)
        if len(here) == 1 and not loose and kids.get(base + (next(iter(here)),)):
            base = base + (next(iter(here)),)
        else:
            break

    def where(prefix: tuple[str, ...]) -> str:
        return "/".join((label, *prefix))

    by_lower = {k.lower(): k for k in sorted(kids.get(base, set()), reverse=True)}
    test_dir = next((by_lower[n] for n in _TEST_NAMES if n in by_lower), None)
    val_dir = next((by_lower[n] for n in _VAL_NAMES if n in by_lower), None)
    split_dirs: dict[str, str | None]
    if "train" in by_lower and (test_dir or val_dir):
        split_dirs = {"train": by_lower["train"], "test": test_dir or val_dir}
        if test_dir and val_dir:
            split_dirs["val"] = val_dir
    else:
        split_dirs = {"train": None}

    per_split = {}
    for split, folder in split_dirs.items():
        prefix = base if folder is None else base + (folder,)
        per_split[split] = _classes_in(prefix, kids, images, where(prefix))
    classes = sorted(per_split["train"])
    for split, found in per_split.items():
        if split != "train" and set(found) != set(classes):
            only_train = sorted(set(classes) - set(found))
            only_here = sorted(set(found) - set(classes))
            diff = "; ".join(s for s in (f"only in train: {', '.join(only_train)}" if only_train else "",
                                          f"only in {split}: {', '.join(only_here)}" if only_here else "") if s)
            raise DataError(f"the {split} split in {where(base)} has different class folders from train ({diff}): "
                            f"give every split the same class folders")
    index = {c: i for i, c in enumerate(classes)}
    splits = {split: [(f, index[c]) for c in classes for f in found[c]] for split, found in per_split.items()}
    return Layout(classes, splits)


def _classes_in(prefix: tuple[str, ...], kids: dict, images: list[tuple[str, ...]], where: str) -> dict[str, list[str]]:
    """{class folder: sorted image files below it} for the class folders directly under `prefix`."""
    classes = sorted(kids.get(prefix, set()))
    if not classes:
        raise DataError(f"no class folders in {where}: put the images in one folder per class, "
                        f"e.g. {where}/cats/*.jpg and {where}/dogs/*.jpg")
    if len(classes) < 2:
        raise DataError(f"{where} has only one class folder ({classes[0]!r}): a classifier needs at least "
                        f"2 classes, one folder each")
    found: dict[str, list[str]] = {c: [] for c in classes}
    n = len(prefix)
    for p in images:
        if len(p) > n + 1 and p[:n] == prefix:
            found[p[n]].append("/".join(p))
    for c in classes:
        if not found[c]:
            raise DataError(f"class folder {c!r} in {where} has no images "
                            f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}): add some or remove the folder")
        found[c].sort()
    return found


# ---------------------------------------------------------------- decoding a split


@dataclass
class Decoded:
    """One split after decoding: in memory (`array`) or lazy (`members`)."""
    names: list[str]            # readable files, in order
    labels: np.ndarray
    members: list[Any]          # the reader's handles of those files (see `ImageReader`)
    array: np.ndarray | None    # (N, c, H, W) uint8 with c 1 or 3, or None when lazy
    size: int                   # lazy resize target
    gray: bool                  # every readable image is grey
    skipped: list[str]

    def to_imageset(self, reader: ImageReader, channels: int) -> ImageSet:
        if self.array is None:
            return ImageSet(None, self.labels, channels=channels, names=self.names,
                            source=LazySource(reader, self.members, self.size))
        a = self.array
        if a.shape[1] != channels:
            a = np.repeat(a, 3, axis=1) if channels == 3 else a[:, :1]
        return ImageSet(torch.from_numpy(np.ascontiguousarray(a)), self.labels, names=self.names)


def decode_split(reader: ImageReader, names: list[str], labels: np.ndarray, *, size: int, skip_bad: bool,
                 max_pixels: int | None = None, budget: int | None = None, fast_jpeg: bool | None = None) -> Decoded:
    """Read and check every file of a split, and decide how to hold it:

    1. all images share one (H, W), N*C*H*W <= budget and max(H, W) <= max(4*size, 512): in memory
       at their own size (decoded once, here);
    2. else if N*C*size*size <= budget: in memory, each resized to size x size here;
    3. else lazy: headers checked here, pixels decoded (and resized to size x size) on access.
    Unreadable files raise DataError naming them, or are skipped and listed when `skip_bad`.
    `fast_jpeg` decodes plain JPEGs with torchvision (None: when there are many of them).
    """
    budget = MEMORY_BUDGET if budget is None else budget
    max_pixels = limits.max_pixels() if max_pixels is None else max_pixels
    members = [reader.member(n) for n in names]
    native_max = max(4 * size, 512)
    results = decode_chunks(reader, members, mode="native", size=size, budget=budget, native_max=native_max,
                            skip_bad=skip_bad, max_pixels=max_pixels,
                            fast_jpeg=use_fast_jpeg(names) if fast_jpeg is None else fast_jpeg)
    bad = [(start + k, msg) for start, r in results for k, msg in r["bad"]]
    if bad and not skip_bad:
        raise DataError(_skip_hint(bad[0][1]))
    ok = [start + k for start, r in results for k in r["ok"]]
    gray = all(r["gray"] for _, r in results)
    channels = 1 if gray else 3
    shapes = {r["array"].shape[2:4] for _, r in results if r["array"] is not None and len(r["array"])}
    uniform = all(r["uniform"] for _, r in results) and len(shapes) <= 1
    skipped = [reader.display(members[i]) for i, _ in bad]

    def done(keep: list[int], array: np.ndarray | None) -> Decoded:
        return Decoded([names[i] for i in keep], labels[keep], [members[i] for i in keep], array, size, gray,
                       skipped)

    if not ok:
        return done([], np.zeros((0, channels, size, size), np.uint8))
    if uniform and shapes:
        (h, w), = shapes
        if len(ok) * channels * h * w <= budget:
            return done(ok, _join([r["array"] for _, r in results]))
    if len(ok) * channels * size * size > budget:
        return done(ok, None)
    # Mixed (or too big) sizes that fit once shrunk: decode again, resizing each image.
    results = decode_chunks(reader, [members[i] for i in ok], mode="resize", size=size, budget=budget,
                            native_max=native_max, skip_bad=skip_bad, max_pixels=max_pixels)
    bad2 = [(ok[start + k], msg) for start, r in results for k, msg in r["bad"]]
    if bad2 and not skip_bad:
        raise DataError(_skip_hint(bad2[0][1]))
    skipped += [reader.display(members[i]) for i, _ in bad2]
    keep = [ok[start + k] for start, r in results for k in r["ok"]]
    if not keep:
        return done([], np.zeros((0, channels, size, size), np.uint8))
    return done(keep, _join([r["array"] for _, r in results]))


def _join(arrays: list[np.ndarray | None]) -> np.ndarray:
    """Chunks (n, c, H, W) -> one array, grey chunks widened to 3 channels if any chunk has colour."""
    present = [a for a in arrays if a is not None and len(a)]
    c = max(a.shape[1] for a in present)
    present = [np.repeat(a, c, axis=1) if a.shape[1] != c else a for a in present]
    return present[0] if len(present) == 1 else np.concatenate(present)


def _skip_hint(message: str) -> str:
    return f"{message}, or load with skip_bad (--skip-bad) to skip unreadable files"
