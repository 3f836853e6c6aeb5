"""Builders of hostile files and checks that a message is one helpful sentence, for the reliability suite."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# The smallest honest training run: LeNet on the built-in digits, one epoch on a stratified subset.
TINY = {"data": {"limit_train": 200, "limit_test": 100}, "train": {"epochs": 1, "batch_size": 32}}
TINY_FLAGS = ["--data", "digits", "--model", "lenet", "--epochs", "1", "--limit-train", "200",
              "--limit-test", "100", "--batch-size", "32"]


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below `folder` (links and odd entries named as such)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            out[rel] = "link:" + os.readlink(path)
        elif stat.S_ISDIR(mode):
            out[rel] = "dir"
        elif stat.S_ISREG(mode):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = f"mode:{mode:o}"
    return out


# -- messages -------------------------------------------------------------------------------------

def assert_sentence(message: object, *fragments: str) -> str:
    """One line, no traceback, and it says each fragment (what is wrong, and what to do)."""
    text = str(message)
    assert text.strip(), "empty message"
    assert "\n" not in text and "Traceback" not in text, text
    assert len(text) < 700, f"not one sentence ({len(text)} characters): {text}"
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in: {text}"
    return text


def assert_cli_error(proc, command: str, *fragments: str) -> str:
    """A CLI mistake: exit code 2 and one line on stderr, `cvdemo <command>: <sentence>`, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"cvdemo {command}: "), lines[0]
    return assert_sentence(lines[0], *fragments)


# -- hostile files --------------------------------------------------------------------------------

def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise_jpeg(size=(48, 40), seed=0) -> bytes:
    a = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(a), "JPEG", quality=90)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (CRC fixed up): a decompression bomb's header."""
    data = bytearray(encode(Image.new("1", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def class_image(label: int, k: int, size=(12, 10)) -> bytes:
    """A PNG whose red level tells its class (30 + 50 * label, for up to 5 classes)."""
    return encode(Image.new("RGB", size, (30 + 50 * label, (7 * k) % 200, 90)), "PNG")


def image_tree(classes=("cat", "dog"), n=4, prefix="", size=(12, 10)) -> dict[str, bytes]:
    return {"/".join(p for p in (prefix, c, f"{c}_{k}.png") if p): class_image(i, k, size)
            for i, c in enumerate(classes) for k in range(n)}


def write_zip(path: Path, files: dict[str, bytes], extra=(), method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for info, data in extra:
            zf.writestr(info, data)
    return path


def patch_central_sizes(path: Path, size_of) -> None:
    """Rewrite the uncompressed size that the central directory declares for members: size_of(name) -> int
    or None (leave it). The bytes themselves stay small: only the claim changes, as in a crafted bomb."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    end = raw.rfind(b"PK\x05\x06")
    cd_offset = struct.unpack_from("<I", raw, end + 16)[0]
    i = cd_offset
    for _ in infos:
        assert raw[i:i + 4] == b"PK\x01\x02"
        n, m, k = struct.unpack_from("<HHH", raw, i + 28)
        name = bytes(raw[i + 46:i + 46 + n]).decode("utf-8")
        new = size_of(name)
        if new is not None:
            struct.pack_into("<I", raw, i + 24, new)
        i += 46 + n + m + k
    path.write_bytes(bytes(raw))


def set_flag_bits(path: Path, member: str, bits: int) -> None:
    """OR `bits` into a member's general-purpose flags, in its local header and its central record."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    struct.pack_into("<H", raw, info.header_offset + 6, struct.unpack_from("<H", raw, info.header_offset + 6)[0] | bits)
    end = raw.rfind(b"PK\x05\x06")
    i = struct.unpack_from("<I", raw, end + 16)[0]
    while raw[i:i + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack_from("<HHH", raw, i + 28)
        if bytes(raw[i + 46:i + 46 + n]).decode("utf-8") == member:
            struct.pack_into("<H", raw, i + 8, struct.unpack_from("<H", raw, i + 8)[0] | bits)
        i += 46 + n + m + k
    path.write_bytes(bytes(raw))
