"""The feature store: a frozen backbone's features, kept on disk between runs, so that a second head-only
run on the same data (another head learning rate, a sweep's next arm, the data audit) reads them instead of
running the backbone again.

    store = FeatureStore(store_root(runs_root))          # <runs root>/.features/
    key, parts = feature_key(setup, images, amp)          # everything the features depend on
    feats = store.get(key, len(images))                   # float32 (N, D) on the CPU, or None
    store.put(key, feats, parts)

An entry is one file `<key>.pt` (written atomically, read with torch.load(weights_only=True)) holding the
features, its key and a digest of the feature bytes; a file that does not load, whose key or row count
differs or whose bytes do not match their digest is deleted and recomputed, never trusted. The key covers the
pixels of the split in their order (the images' bytes when in memory, each file's bytes and the decoding
settings when decoded lazily), the model's name and every frozen tensor of its state_dict (the head's, which
does not touch its own input, left out), the input size, normalisation and channels, the layer read, the device
kind, the autocast dtype and the torch version. Labels are not in it: the features do not depend on them, and
the run takes its labels from its own data. The store keeps at most $CVDEMO_FEATURE_STORE_MB megabytes
(default 2048), removing the least recently used entries first; CVDEMO_FEATURE_STORE=0 turns it off.

Beside the entries, `<fingerprint>.data.json` notes what decoding a folder's or zip's files gave (each split's
pixel digest), under a fingerprint of those files taken without opening them (`LazySource.fingerprint`): a
later run on the same, unchanged files finds its features without decoding an image
(`cvdemo.train.feature_cache.quick_bundle`). `clear` removes the notes with the entries.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cvdemo import runs
from cvdemo.errors import ConfigError

if TYPE_CHECKING:
    from cvdemo.data.imageset import ImageSet
    from cvdemo.train.setup import Setup

__all__ = ["FeatureStore", "store_root", "store_enabled", "cap_bytes", "images_digest", "weights_digest",
           "feature_key", "FORMAT"]

FORMAT = 1                 # bumped whenever what a key means changes: older files then simply miss
FOLDER = ".features"
DEFAULT_MB = 2048


def store_root(runs_root: str | Path | None = None) -> Path:
    """The store's folder: `<runs root>/.features` (runs root: $CVDEMO_RUNS or ./runs when None)."""
    return Path(runs_root if runs_root is not None else runs.default_root()).expanduser() / FOLDER


def store_enabled() -> bool:
    """False when $CVDEMO_FEATURE_STORE is 0 / off / no / false: every run then computes its own features."""
    return os.environ.get("CVDEMO_FEATURE_STORE", "1").strip().lower() not in ("0", "off", "no", "false")


def cap_bytes() -> int:
    """The store's size cap in bytes, from $CVDEMO_FEATURE_STORE_MB (default 2048)."""
    raw = os.environ.get("CVDEMO_FEATURE_STORE_MB", str(DEFAULT_MB)).strip()
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if not mb >= 0:
        raise ConfigError(f"CVDEMO_FEATURE_STORE_MB must be a number of megabytes (0 or more), not {raw!r}")
    return int(mb * 1024 * 1024)


def images_digest(images: ImageSet) -> str:
    """A digest of a split's pixels in their order: the uint8 tensor's bytes when in memory; for a lazy
    set each file's bytes plus what decoding does with them (side, channels, pixel limit, Pillow version)."""
    if images.pixels_digest is not None:  # measured by an earlier, decoding load of the same files
        return images.pixels_digest
    h = hashlib.blake2b(digest_size=20)
    h.update(f"n={len(images)} channels={images.channels}".encode())
    if images.images is not None:
        a = images.images.detach().cpu().contiguous().numpy()
        h.update(f"memory {a.shape}".encode())
        h.update(a.data)
        return h.hexdigest()
    import PIL

    source = images.source
    assert source is not None  # an ImageSet is in memory or lazy
    h.update(f"lazy size={source.size} max_pixels={source.max_pixels} pillow={PIL.__version__}".encode())
    for member in source.members:
        data = source.reader.read(member)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def weights_digest(model: torch.nn.Module, skip: str | None = None) -> str:
    """A digest of every state_dict tensor (name, dtype, shape, bytes) but those under the prefix `skip`."""
    h = hashlib.blake2b(digest_size=20)
    for name, t in sorted(model.state_dict().items()):
        if skip and (name == skip or name.startswith(skip + ".")):
            continue
        a = t.detach().cpu().contiguous()
        h.update(f"{name} {a.dtype} {tuple(a.shape)}".encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().data if a.numel() else b"")
    return h.hexdigest()


def feature_key(setup: Setup, images: ImageSet, amp: torch.dtype | None) -> tuple[str, dict[str, Any]]:
    """(key, its parts) of the head's input computed by `setup.model` over `images` (see the module doc)."""
    head = setup.spec.head
    parts = {"format": FORMAT, "data": images_digest(images), "images": len(images), "model": setup.spec.name,
             "weights": weights_digest(setup.model, head), "image_size": setup.image_size,
             "in_channels": setup.in_channels, "mean": [float(v) for v in setup.mean],
             "std": [float(v) for v in setup.std], "channels_last": bool(setup.channels_last),
             "layer": f"{head}:input", "device": setup.device.type, "amp": str(amp), "torch": torch.__version__}
    key = hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=16).hexdigest()
    return key, parts


def _bytes_digest(t: torch.Tensor) -> str:
    return hashlib.blake2b(t.contiguous().reshape(-1).view(torch.uint8).numpy().data, digest_size=16).hexdigest()


class FeatureStore:
    """Feature files under one folder, capped at `cap` bytes (None: `cap_bytes()`), least recently used
    removed first. Every failure to read is a miss; a failure to write is a warning, never a failed run."""

    def __init__(self, root: str | Path, cap: int | None = None):
        self.root = Path(root)
        self.cap = cap_bytes() if cap is None else int(cap)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def get(self, key: str, rows: int) -> torch.Tensor | None:
        """The stored float32 (rows, D) features of `key` on the CPU, or None (absent, corrupt or mismatched:
        a bad file is deleted)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            feats = entry["features"]
            ok = (entry.get("key") == key and isinstance(feats, torch.Tensor) and feats.dtype == torch.float32
                  and feats.dim() == 2 and feats.shape[0] == rows and entry.get("digest") == _bytes_digest(feats))
        except Exception:  # noqa: BLE001 - whatever a damaged file raises, it is recomputed
            ok = False
        if not ok:
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # the least recently used go first
        except OSError:
            pass
        return feats

    def put(self, key: str, features: torch.Tensor, parts: dict[str, Any]) -> bool:
        """Store float32 (N, D) features under `key` (then trim the store to its cap); False when they were not
        kept (larger than the cap, or the folder cannot be written)."""
        feats = features.detach().float().cpu().contiguous()
        if feats.numel() * 4 > self.cap:
            return False
        buffer = io.BytesIO()
        torch.save({"key": key, "features": feats, "digest": _bytes_digest(feats), "created": time.time(),
                    "parts": json.dumps(parts, sort_keys=True)}, buffer)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            runs.write_atomic(self.path(key), buffer.getvalue())
            self.trim(keep=key)
        except OSError as e:
            warnings.warn(f"the feature store at {self.root} cannot be written ({e.strerror or e}); "
                          "the features are used for this run only", stacklevel=2)
            return False
        return True

    def remember_data(self, fingerprint: str, digests: dict[str, Any]) -> None:
        """Keep what a decoding load of some files measured (each split's `images_digest`, the channels) under
        the files' fingerprint (`LazySource.fingerprint`), so that a later run on the same files can find its
        features without decoding them (`recall_data`). A folder that cannot be written is left as it is."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            runs.write_json(self.root / f"{fingerprint}.data.json", {"format": FORMAT, **digests})
        except OSError:
            pass

    def recall_data(self, fingerprint: str) -> dict[str, Any] | None:
        """What `remember_data` kept for these files, or None."""
        try:
            found = runs.read_json(self.root / f"{fingerprint}.data.json")
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) and found.get("format") == FORMAT else None

    def files(self) -> list[Path]:
        """The entries' files, least recently used first."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.glob("*.pt"):
            try:
                found.append((p.stat().st_mtime, p))
            except OSError:  # removed meanwhile by another process
                continue
        return [p for _, p in sorted(found)]

    def trim(self, keep: str | None = None) -> int:
        """Remove least recently used entries (never `keep`) until the store fits its cap; the count removed."""
        files = self.files()
        sizes = {p: _size(p) for p in files}
        total, removed = sum(sizes.values()), 0
        for p in files:
            if total <= self.cap:
                break
            if p.stem == keep:
                continue
            p.unlink(missing_ok=True)
            total -= sizes[p]
            removed += 1
        return removed

    def entries(self) -> list[dict[str, Any]]:
        """One dict per entry, most recently used first: key, bytes, last used (epoch seconds) and, for a
        readable file, images, feature dimension, model, image size, device and creation time."""
        out = []
        for p in reversed(self.files()):
            row: dict[str, Any] = {"key": p.stem, "bytes": _size(p), "used": _mtime(p)}
            try:
                entry = torch.load(p, map_location="cpu", weights_only=True)
                parts = json.loads(entry["parts"])
                row.update(images=int(entry["features"].shape[0]), dim=int(entry["features"].shape[1]),
                           model=parts.get("model"), image_size=parts.get("image_size"),
                           device=parts.get("device"), created=float(entry["created"]))
            except Exception:  # noqa: BLE001 - listed as it is; the next run that needs it recomputes it
                row["unreadable"] = True
            out.append(row)
        return out

    def clear(self) -> tuple[int, int]:
        """Remove every entry (with the data notes of `remember_data` and leftover temporary files); (feature
        files removed, bytes freed)."""
        if not self.root.is_dir():
            return 0, 0
        count = freed = 0
        for p in [*self.root.glob("*.pt"), *self.root.glob("*.data.json"), *self.root.glob(".*.tmp")]:
            size = _size(p)
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            count, freed = count + (p.suffix == ".pt"), freed + size
        return count, freed


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0
