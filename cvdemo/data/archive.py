"""Reading image files from a folder or straight out of a zip archive (never extracted to disk).

A reader is small and picklable: it holds a path, and each process opens the archive on
first use (DataLoader workers, decoding processes). Zip members are read through a memory
map of the archive, with the sizes and CRC from the central directory enforced, which is
an order of magnitude faster than `ZipFile.read` for tens of thousands of small files.
"""

from __future__ import annotations

import lzma
import mmap
import os
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from cvdemo.errors import DataError

MAX_TOTAL_BYTES = 20 * 10**9      # declared uncompressed size of a whole archive
BOMB_RATIO = 200                  # compression ratio above which a big member is refused
BOMB_MIN_BYTES = 10 * 2**20       # ... when it also expands to more than this
BOMB_TOTAL_MIN_BYTES = 2**30      # a whole archive expanding to more than this at BOMB_RATIO is refused too


class ZipMember(NamedTuple):
    """Where a member's bytes lie in the archive (from the central directory)."""
    name: str
    offset: int        # of its local file header
    csize: int         # compressed size
    size: int          # uncompressed size
    method: int        # 0 stored, 8 deflated, other: read through zipfile
    crc: int
    flags: int


class ImageReader(Protocol):
    """What reads a data set's files: `DirReader` (a folder) or `ZipReader` (a zip archive).

    A member is the reader's own handle of one file (a relative path, or a `ZipMember`); get one
    from a name that `list` returned with `member(name)`.
    """

    label: str

    def list(self) -> tuple[list[str], list[str]]: ...
    def member(self, name: str, /) -> Any: ...
    def read(self, member: Any, /) -> bytes: ...
    def display(self, member: Any, /) -> str: ...
    def stamp(self, member: Any, /) -> str: ...
    def forget_index(self) -> None: ...


class DirReader:
    """Files of a folder; members are paths relative to the folder, with '/' separators."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.label = str(self.root)

    def list(self) -> tuple[list[str], list[str]]:
        """(files, folders) below the root, relative, sorted; hidden entries and __MACOSX pruned."""
        files: list[str] = []
        dirs: list[str] = []
        for here, subdirs, names in os.walk(self.root):
            subdirs[:] = [d for d in subdirs if not ignored(d)]
            rel = Path(here).relative_to(self.root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            dirs.extend(prefix + d for d in subdirs)
            files.extend(prefix + f for f in names if not ignored(f))
        return sorted(files), sorted(dirs)

    def member(self, name: str) -> str:
        return name

    def forget_index(self) -> None:
        pass

    def read(self, member: str) -> bytes:
        try:
            return (self.root / member).read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {self.root / member}: {e.strerror or e}") from None

    def display(self, member: str) -> str:
        return str(self.root / member)

    def stamp(self, member: str) -> str:
        """What identifies the file's content without reading it: inode, size, modification and change
        times (any write to the file moves its change time, which no user command can set back)."""
        try:
            st = (self.root / member).stat()
        except OSError as e:
            raise DataError(f"cannot read {self.root / member}: {e.strerror or e}") from None
        return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


class ZipReader:
    """Members of a zip archive, checked for unsafe entries when opened."""

    def __init__(self, path: str | Path, *, max_total_bytes: int = MAX_TOTAL_BYTES):
        self.path = Path(path)
        self.label = self.path.name
        self._pid: int | None = None
        self._mm: mmap.mmap | None = None
        self._zip: zipfile.ZipFile | None = None
        self._infos: list[zipfile.ZipInfo] | None = check_zip(self.path, max_total_bytes=max_total_bytes)
        self._by_name: dict[str, zipfile.ZipInfo] = {}

    def __getstate__(self) -> dict:
        # The member table and the open handles stay behind: each process reopens lazily.
        return {"path": self.path, "label": self.label}

    def __setstate__(self, state: dict) -> None:
        self.path, self.label = state["path"], state["label"]
        self._pid, self._mm, self._zip, self._infos, self._by_name = None, None, None, None, {}

    def list(self) -> tuple[list[str], list[str]]:
        files: list[str] = []
        dirs: list[str] = []
        self._by_name = {}
        for info in self._infos or []:
            name = info.filename
            if "\\" in name or "//" in name or name.startswith("/"):
                name = "/".join(p for p in name.replace("\\", "/").split("/") if p)
            else:
                name = name.rstrip("/")
            if not name or "/." in "/" + name or any(bad in name for bad in ("__MACOSX", "Thumbs.db", "desktop.ini")):
                if not name or any(ignored(p) for p in name.split("/")):
                    continue
            if info.is_dir():
                dirs.append(name)
            else:
                files.append(name)
                self._by_name[name] = info
        return sorted(files), sorted(dirs)

    def member(self, name: str) -> ZipMember:
        """The member for a name as returned by `list`."""
        i = self._by_name[name]
        return ZipMember(i.filename, i.header_offset, i.compress_size, i.file_size, i.compress_type, i.CRC,
                         i.flag_bits)

    def display(self, member: ZipMember) -> str:
        return f"{member.name} in {self.label}"

    def stamp(self, member: ZipMember) -> str:
        """What identifies the member's content without reading it: its CRC-32 and sizes from the central
        directory (enforced by `read`)."""
        return f"{member.crc}:{member.size}:{member.method}:{member.csize}"

    def forget_index(self) -> None:
        """Drop the member table once members are resolved (lazy sets keep the reader alive)."""
        self._infos = None
        self._by_name = {}

    def _open(self) -> mmap.mmap:
        if self._pid != os.getpid() or self._mm is None:
            try:
                with open(self.path, "rb") as f:
                    self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except OSError as e:
                raise DataError(f"cannot read {self.path}: {e.strerror or e}") from None
            self._zip, self._pid = None, os.getpid()
        return self._mm

    def read(self, m: ZipMember) -> bytes:
        """The member's uncompressed bytes; DataError if damaged or encrypted."""
        mm = self._open()
        where = self.display(m)
        if m.flags & 0x1:
            raise DataError(f"{where} is encrypted: re-create the zip without a password")
        if m.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return self._read_slow(m)
        try:
            if mm[m.offset:m.offset + 4] != b"PK\x03\x04":
                raise ValueError("bad local header")
            n, e = struct.unpack_from("<HH", mm, m.offset + 26)
            start = m.offset + 30 + n + e
            if start + m.csize > len(mm):
                raise ValueError("member runs past the end of the file")
            raw = mm[start:start + m.csize]
            if m.method == zipfile.ZIP_STORED:
                data = raw
            else:
                d = zlib.decompressobj(-15)
                data = d.decompress(raw, m.size + 1)
            if len(data) != m.size or zlib.crc32(data) != m.crc:
                raise ValueError("size or CRC mismatch")
        except (ValueError, struct.error, zlib.error) as e:
            raise DataError(f"{where} is damaged ({e}): re-create the zip") from None
        return data

    def _read_slow(self, m: ZipMember) -> bytes:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        try:
            with self._zip.open(m.name) as f:
                data = f.read(m.size + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, zlib.error, ValueError,
                struct.error, lzma.LZMAError) as e:
            reason = str(e).splitlines()[0][:100] if str(e).strip() else type(e).__name__
            raise DataError(f"{self.display(m)} cannot be read ({reason}): re-create the zip with "
                            f"ordinary (deflate) compression") from None
        if len(data) != m.size:
            raise DataError(f"{self.display(m)} is damaged (size mismatch): re-create the zip")
        return data


def check_zip(path: Path, *, max_total_bytes: int = MAX_TOTAL_BYTES) -> list[zipfile.ZipInfo]:
    """The archive's member table, after refusing unsafe archives with a DataError.

    Refused: members with absolute paths or '..' components (zip slip), symbolic links, a
    declared total size above `max_total_bytes`, and members over 10 MB, or archives over 1 GB,
    with a compression ratio above 200 (zip bombs). Declared sizes are enforced when members are read.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, struct.error, zlib.error) as e:
        # A damaged central directory can surface as any of these (ValueError includes bad UTF-8 names).
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DataError(f"{path} is not a valid zip file ({reason}): re-create it, or point to a folder") from None
    total = total_compressed = 0
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise DataError(f"zip member {name!r} in {path.name} points outside the archive (absolute path or "
                            f"'..'): refusing this zip, re-create it with relative paths")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(f"zip member {name!r} in {path.name} is a symbolic link: refusing this zip, "
                            f"re-create it with the files themselves")
        if info.file_size > BOMB_MIN_BYTES and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise DataError(f"zip member {name!r} in {path.name} expands {info.file_size / max(info.compress_size, 1):,.0f}"
                            f" times to {info.file_size / 2**20:,.0f} MB (a zip bomb?): refusing this zip; "
                            f"re-create it from the image files themselves")
        total += info.file_size
        total_compressed += info.compress_size
    if total > max_total_bytes:
        raise DataError(f"{path.name} declares {total / 1e9:,.1f} GB of uncompressed data, more than the "
                        f"{max_total_bytes / 1e9:,.0f} GB allowed: use a smaller archive or an extracted folder")
    if total > BOMB_TOTAL_MIN_BYTES and total > BOMB_RATIO * max(total_compressed, 1):
        # Many members each under BOMB_MIN_BYTES: images are compressed already, real archives never do this.
        raise DataError(f"{path.name} expands {total / max(total_compressed, 1):,.0f} times to "
                        f"{total / 2**20:,.0f} MB over {len(infos):,} members (a zip bomb?): refusing this zip; "
                        f"re-create it from the image files themselves")
    return infos


def ignored(part: str) -> bool:
    """Hidden files and folders, macOS resource forks and Windows thumbnails."""
    return part.startswith(".") or part in ("__MACOSX", "Thumbs.db", "desktop.ini")
