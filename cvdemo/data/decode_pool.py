"""Checking and decoding many image files, in chunks, in forked worker processes when it pays.

`decode_chunks` is the one entry point: it splits a list of archive members into chunks,
decodes each (in this process, or spread over processes on machines with 4 or more cores),
and returns per-chunk results that `cvdemo.data.folder.decode_split` turns into an image set.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cvdemo.data import jpeg
from cvdemo.data.decode import finish_decode, is_gray, open_header
from cvdemo.data.imageset import resize_square
from cvdemo.errors import DataError

if TYPE_CHECKING:
    from cvdemo.data.archive import ImageReader

PARALLEL_MIN_NATIVE = 4000      # files before decoding at native size is spread over processes
PARALLEL_MIN_RESIZE = 256       # ... and before decoding-and-shrinking (big photos) is


def decode_chunks(reader: ImageReader, members: list[Any], *, mode: str, size: int, budget: int, native_max: int,
                  skip_bad: bool, max_pixels: int, fast_jpeg: bool = False) -> list[tuple[int, dict]]:
    """Decode `members` in chunks, in worker processes when there are many; [(start, chunk result)].

    `mode` "native" keeps pixels at their own size while they share one (H, W) and fit `budget` bytes
    (no side over `native_max`); "resize" decodes each image to size x size. A chunk result holds
    ok (local indices of readable files), bad ((index, message)), gray (all readable files grey),
    array ((k, c, H, W) uint8 or None) and uniform (native mode: all decoded at one size within the
    budget; otherwise the rest was only header-checked and array is None)."""
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


def _decode_chunk(job: tuple[ImageReader, list[Any], dict]) -> dict:
    """Check (and decode) a run of files: one chunk result (see `decode_chunks`)."""
    reader, members, p = job
    return _scan(reader, members, **p)


def _scan(reader: ImageReader, members: list[Any], *, mode: str, size: int, budget: int, native_max: int,
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
        fast = jpeg.fast_jpegs(datas, max_pixels) if fast_jpeg and native and keep_pixels else {}
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
                        assert img is not None  # the fast JPEG path (img None) runs in native mode only
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
