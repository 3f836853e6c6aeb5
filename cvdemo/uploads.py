"""Data people upload in the app, stored under `<runs root>/uploads/` and named by content, never by the user.

    folder = save_labelled_images([("cat", "tom.jpg", data), ("dog", "rex.png", data2)])
    zipped = save_zip(data)                  # uploads/upload-<hash>.zip, loadable like any zip source

Sizes are checked against $CVDEMO_MAX_ZIP_MB / $CVDEMO_MAX_IMAGE_MB (see cvdemo/limits.py), read when used.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from cvdemo import limits, runs
from cvdemo.errors import CvdemoError
from cvdemo.runs import UPLOADS

__all__ = ["UPLOADS", "uploads_dir", "check_size", "save_zip", "remember_name", "safe_class_name", "save_labelled_images"]



def uploads_dir(root: Path | str | None = None) -> Path:
    """`<root>/uploads`, created if missing (root: the runs folder, default $CVDEMO_RUNS or ./runs)."""
    folder = Path(root if root is not None else runs.default_root()) / UPLOADS
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CvdemoError(f"cannot create the uploads folder {folder}: {e.strerror or e}") from None
    return folder


def check_size(name: str, data: bytes, limit_mb: int) -> None:
    """CvdemoError naming the file when `data` is larger than `limit_mb` megabytes (MiB)."""
    if len(data) > limit_mb * 2**20:
        raise CvdemoError(f"{name} is {len(data) / 2**20:.0f} MB, more than the {limit_mb} MB allowed here")


def save_zip(data: bytes, root: Path | str | None = None, name: str | None = None) -> Path:
    """Store an uploaded zip as `uploads/upload-<sha256 prefix>.zip`; the same bytes give the same file.
    `name`, the file name it was uploaded under, is kept beside it as the data's display name
    (`runs.data_display_name`): lists and legends then say "scenes.zip", not a hash or a server path."""
    check_size("the zip file", data, limits.max_zip_mb())
    path = uploads_dir(root) / f"upload-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    if not path.exists():
        runs.write_atomic(path, data)
    if name:
        remember_name(path, name.replace("\\", "/").rsplit("/", 1)[-1])  # a browser may send a Windows path
    return path


def remember_name(path: Path, name: str) -> None:
    """Keep `name` as the display name of the upload stored at `path` (one line of text beside it)."""
    clean = "".join(c for c in name if c.isprintable())[:120].strip()
    if clean:
        runs.write_atomic(path.with_name(path.name + runs.DISPLAY_NAME_SUFFIX), clean.encode("utf-8"))


def safe_class_name(text: str) -> str:
    """A class name usable as a folder name: letters, digits, space, - and _ only, at most 60 characters."""
    name = "".join(c for c in text.strip() if c.isalnum() or c in " -_").strip()
    if not name:
        raise CvdemoError(f"class name {text!r} is empty or has no letters or digits: give every image a class")
    return name[:60]


def save_labelled_images(items: list[tuple[str, str, bytes]], root: Path | str | None = None) -> Path:
    """(class name, file name, bytes) -> an image folder `uploads/images-<hash>/<class>/<n>-<name>.<ext>`.

    Names are cleaned so nothing lands outside that folder; at least two classes are required. The folder
    is written under a temporary name and renamed, so a half-written upload is never loaded."""
    from cvdemo.data.folder import IMAGE_EXTENSIONS  # cvdemo.data pulls in torch: only when images arrive

    limit_mb = limits.max_image_mb()
    digest = hashlib.sha256()
    entries = []
    for i, (label, name, data) in enumerate(items):
        check_size(name, data, limit_mb)
        label = safe_class_name(label)
        suffix = Path(name).suffix.lower()
        stem = "".join(c for c in Path(name).stem if c.isalnum() or c in "-_")[:40] or "image"
        entries.append((label, f"{i:04d}-{stem}{suffix if suffix in IMAGE_EXTENSIONS else '.png'}", data))
        digest.update(f"{label}\0{name}\0".encode() + hashlib.sha256(data).digest())
    if len({e[0] for e in entries}) < 2:
        raise CvdemoError("a classifier needs at least two classes: give the images at least two class names")
    folder = uploads_dir(root) / f"images-{digest.hexdigest()[:16]}"
    remember_name(folder, f"{len(entries)} uploaded images in {len({e[0] for e in entries})} classes")
    if folder.is_dir():
        return folder
    tmp = folder.with_name(folder.name + f".tmp{time.time_ns()}")
    for label, fname, data in entries:
        (tmp / label).mkdir(parents=True, exist_ok=True)
        (tmp / label / fname).write_bytes(data)
    tmp.rename(folder)
    return folder
