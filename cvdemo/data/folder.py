"""Image folders and zip archives in the image-folder layout.

Accepted layouts, at the root or inside a single wrapper folder (`cifar10/train/...`):

    train/<class>/...  +  test/<class>/...   (test may be called val/valid when there is no test;
                                              with both, val/valid is the validation split)
    <class>/...                              (flat: train/val/test are carved out, stratified)

Small splits are decoded once at load time into a uint8 tensor; big ones stay lazy (decoded
on access). On machines with 4 or more cores, decoding tens of thousands of files is
spread over forked processes.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvdemo import limits
from cvdemo.data.archive import DirReader, ZipReader
from cvdemo.data.decode import finish_decode, is_gray, open_header
from cvdemo.data.imageset import DataBundle, ImageSet, LazySource, resize_square
from cvdemo.data.split import stratified_split, stratified_subset
from cvdemo.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MEMORY_BUDGET = 512 * 2**20     # bytes of uint8 pixels a split may hold in memory
DEFAULT_SIZE = 224              # lazy / resized side when the caller gives no image size
PARALLEL_MIN_NATIVE = 4000      # files before decoding at native size is spread over processes
PARALLEL_MIN_RESIZE = 256       # ... and before decoding-and-shrinking (big photos) is
FAST_JPEG_MIN = 20_000          # JPEGs to decode before importing torchvision (~1.5 s) to decode them faster
FAST_JPEG_MIN_IMPORTED = 256    # ... when torchvision is already imported

_TEST_NAMES = ("test",)
_VAL_NAMES = ("val", "valid", "validation")


@dataclass
class Layout:
    """Class names and, per split present in the folder, (file, label) pairs."""
    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]


def load_folder(path: Path, *, val_fraction: float, test_fraction: float, seed: int,
                limit_train: int | None, limit_test: int | None, image_size: int | None,
                skip_bad: bool, max_pixels: int | None = None) -> DataBundle:
    """Load an image folder or a .zip of one (see the module docstring for the layouts); images over
    `max_pixels` (None: `limits.max_pixels()`) are refused."""
    if max_pixels is None:
        max_pixels = limits.max_pixels()
    if path.is_dir():
        reader: Any = DirReader(path)
    elif path.is_file():
        if not zipfile.is_zipfile(path):
            if path.suffix.lower() == ".zip":
                raise DataError(f"{path} is not a valid zip file: re-create it, or point to a folder")
            raise DataError(f"{path} is neither a folder nor a .zip file: point to an image folder or a zip of one")
        reader = ZipReader(path)
    else:
        raise DataError(f"{path} is neither a folder nor a .zip file: point to an image folder or a zip of one")
    files, dirs = reader.list()
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
    fast = _use_fast_jpeg([n for names, _ in parts.values() for n in names])
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

    here = {k.lower(): k for k in sorted(kids.get(base, set()), reverse=True)}
    test_dir = next((here[n] for n in _TEST_NAMES if n in here), None)
    val_dir = next((here[n] for n in _VAL_NAMES if n in here), None)
    if "train" in here and (test_dir or val_dir):
        split_dirs = {"train": here["train"], "test": test_dir or val_dir}
        if test_dir and val_dir:
            split_dirs["val"] = val_dir
    else:
        split_dirs = {"train": None}

    per_split = {}
    for split, d in split_dirs.items():
        prefix = base if d is None else base + (d,)
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
    members: list[Any]
    array: np.ndarray | None    # (N, c, H, W) uint8 with c 1 or 3, or None when lazy
    size: int                   # lazy resize target
    gray: bool                  # every readable image is grey
    skipped: list[str]

    def to_imageset(self, reader: Any, channels: int) -> ImageSet:
        if self.array is None:
            return ImageSet(None, self.labels, channels=channels, names=self.names,
                            source=LazySource(reader, self.members, self.size))
        a = self.array
        if a.shape[1] != channels:
            a = np.repeat(a, 3, axis=1) if channels == 3 else a[:, :1]
        return ImageSet(torch.from_numpy(np.ascontiguousarray(a)), self.labels, names=self.names)


def decode_split(reader: Any, names: list[str], labels: np.ndarray, *, size: int, skip_bad: bool,
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
    results = _run(reader, members, mode="native", size=size, budget=budget, native_max=native_max,
                   skip_bad=skip_bad, max_pixels=max_pixels,
                   fast_jpeg=_use_fast_jpeg(names) if fast_jpeg is None else fast_jpeg)
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
    results = _run(reader, [members[i] for i in ok], mode="resize", size=size, budget=budget,
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
    arrays = [a for a in arrays if a is not None and len(a)]
    c = max(a.shape[1] for a in arrays)
    arrays = [np.repeat(a, c, axis=1) if a.shape[1] != c else a for a in arrays]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _use_fast_jpeg(names: list[str]) -> bool:
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


def _skip_hint(message: str) -> str:
    return f"{message}, or load with skip_bad (--skip-bad) to skip unreadable files"


def _run(reader: Any, members: list[Any], *, mode: str, size: int, budget: int, native_max: int,
         skip_bad: bool, max_pixels: int, fast_jpeg: bool = False) -> list[tuple[int, dict]]:
    """Decode `members` in chunks, in worker processes when there are many; [(start, chunk result)]."""
    n = len(members)
    procs = _processes(n, PARALLEL_MIN_NATIVE if mode == "native" else PARALLEL_MIN_RESIZE)
    chunks = max(1, procs * 4) if procs > 1 else 1
    bounds = np.linspace(0, n, chunks + 1).round().astype(int)
    jobs = [(reader, members[a:b], dict(mode=mode, size=size, budget=budget * (b - a) // max(n, 1),
                                        native_max=native_max, skip_bad=skip_bad, max_pixels=max_pixels,
                                        fast_jpeg=fast_jpeg))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if procs <= 1:
        return [(int(a), _decode_chunk(job)) for a, job in zip(bounds[:-1], jobs, strict=True)]
    ctx = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max_workers=procs, mp_context=ctx)
    try:
        out = []
        for a, result in zip(bounds[:-1], pool.map(_decode_chunk, jobs), strict=True):
            out.append((int(a), result))
            if result["bad"] and not skip_bad:
                break
        return out
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _processes(n: int, threshold: int) -> int:
    """How many decoding processes: CVDEMO_DECODE_PROCESSES if set; else, for big jobs on machines with
    at least 4 cores, one per core but one (at most 8). With 2 cores a second process measured slower
    than decoding in-process (forking, copy-on-write and result transfer cost more than they save)."""
    env = os.environ.get("CVDEMO_DECODE_PROCESSES", "").strip()
    cores = os.cpu_count() or 1
    if env.isdigit():
        wanted = int(env)
    else:
        wanted = min(cores - 1, 8) if n >= threshold and cores >= 4 else 1
    if wanted <= 1 or "fork" not in multiprocessing.get_all_start_methods() \
            or multiprocessing.current_process().daemon:
        return 1
    return wanted


def _decode_chunk(job: tuple[Any, list[Any], dict]) -> dict:
    """Check (and decode) a run of files. Result: ok (local indices of readable files), bad ((index, message)),
    gray (all readable files grey), array ((k, c, H, W) uint8 or None) and uniform (native mode: all decoded
    at one size within the byte budget; otherwise the rest was only header-checked and array is None)."""
    reader, members, p = job
    return _scan(reader, members, **p)


def _scan(reader: Any, members: list[Any], *, mode: str, size: int, budget: int, native_max: int,
          skip_bad: bool, max_pixels: int, fast_jpeg: bool = False) -> dict:
    native = mode == "native"
    keep_pixels = True
    arrays: list[np.ndarray] = []
    ok: list[int] = []
    bad: list[tuple[int, str]] = []
    gray_all, used, shape = True, 0, None
    block = 256
    for start in range(0, len(members), block):
        datas: dict[int, bytes | DataError] = {}
        for k in range(start, min(start + block, len(members))):
            try:
                datas[k] = reader.read(members[k])
            except DataError as e:
                datas[k] = e
        fast = _fast_jpegs(datas, max_pixels) if fast_jpeg and native and keep_pixels else {}
        for k, data in datas.items():
            name = reader.display(members[k])
            try:
                if isinstance(data, DataError):
                    raise data
                if k in fast:
                    a, (w, h), gray = fast[k]  # a: tensor (c, H, W)
                    hw = a.shape[1:]
                    img = None
                else:
                    img = open_header(data, name, max_pixels=max_pixels)
                    (w, h), gray = img.size, is_gray(img)
                if native and keep_pixels and (max(w, h) > native_max or used + w * h * (1 if gray else 3) > budget):
                    keep_pixels = False
                if keep_pixels:
                    if native:
                        if img is not None:
                            a = np.asarray(finish_decode(img, name, "L" if gray else "RGB"))  # (H, W[, 3])
                            hw = a.shape[:2]
                        if shape is None:
                            shape = hw
                        if hw != shape:
                            keep_pixels = False
                        else:
                            arrays.append(a)
                            used += hw[0] * hw[1] * (1 if gray else 3)
                    else:
                        im = finish_decode(img, name, "L" if gray else "RGB", draft=(size, size))
                        arrays.append(np.asarray(resize_square(im, size)))
            except DataError as e:
                bad.append((k, str(e)))
                if not skip_bad:
                    return _chunk_result(ok, bad, gray_all, arrays, keep_pixels, size)
                continue
            ok.append(k)
            gray_all = gray_all and gray
    return _chunk_result(ok, bad, gray_all, arrays, keep_pixels, size)


def _chunk_result(ok: list[int], bad: list, gray: bool, arrays: list, keep_pixels: bool, size: int) -> dict:
    """Stack decoded images (numpy (H, W) or (H, W, 3) from Pillow, tensors (c, H, W) from torchvision)
    into one uint8 array (n, c, H, W)."""
    array = None
    if keep_pixels:
        if arrays:
            colour = any((a.ndim == 3 and a.shape[2] == 3) if isinstance(a, np.ndarray) else a.shape[0] == 3
                         for a in arrays)
            first = arrays[0]
            h, w = first.shape[:2] if isinstance(first, np.ndarray) else first.shape[1:]
            array = np.empty((len(arrays), 3 if colour else 1, h, w), np.uint8)
            out = torch.from_numpy(array)
            if all(isinstance(a, torch.Tensor) and a.shape[0] == array.shape[1] for a in arrays):
                torch.stack(arrays, out=out)  # the usual case (all JPEGs): one copy in C++
            else:
                for i, a in enumerate(arrays):
                    if isinstance(a, np.ndarray):
                        array[i] = a if a.ndim == 2 else a.transpose(2, 0, 1)
                    else:
                        out[i].copy_(a)
        else:
            array = np.zeros((0, 1, size, size), np.uint8)
    return {"ok": ok, "bad": bad, "gray": gray, "array": array, "uniform": keep_pixels}


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


def _fast_jpegs(datas: dict[int, bytes | DataError], max_pixels: int) -> dict[int, tuple]:
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
