"""Image folders and zip archives: layouts, splits, limits, memory vs lazy, and every refusal."""

import io
import pickle
import stat
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvdemo.data import decode_pool, jpeg, load_dataset, make_loader
from cvdemo.data import folder as folder_mod
from cvdemo.data.archive import ZipReader
from cvdemo.errors import DataError

CLASSES = ["cat", "dog", "owl"]


def colour(label: int, k: int) -> tuple[int, int, int]:
    """Each class has its own red level, so a decoded image tells which label it must carry."""
    return (40 + 80 * label, (7 * k) % 200, 90)


def image_bytes(label: int, k: int, size=(12, 10), fmt="PNG", grey=False) -> bytes:
    img = Image.new("RGB", size, colour(label, k))
    if grey:
        img = Image.new("L", size, 40 + 80 * label)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def tree(split_counts: dict[str, int], *, prefix: str = "", classes=CLASSES, fmt="PNG", size=(12, 10),
         sizes=None, grey=False) -> dict[str, bytes]:
    """{relative path: bytes}; split '' means the flat layout. `sizes` cycles through several sizes."""
    ext = "jpg" if fmt == "JPEG" else "png"
    files = {}
    for split, n in split_counts.items():
        for label, c in enumerate(classes):
            for k in range(n):
                s = sizes[k % len(sizes)] if sizes else size
                path = "/".join(p for p in (prefix, split, c, f"{c}_{k:03d}.{ext}") if p)
                files[path] = image_bytes(label, k, s, fmt, grey)
    return files


def write_dir(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes], extra: list[tuple[zipfile.ZipInfo | str, bytes]] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
        for info, data in extra:
            zf.writestr(info, data)
    return path


def check_labels(images, classes=CLASSES):
    """Every image's colour matches its label's class."""
    for i in range(len(images)):
        x, y = images[i]
        red = int(x[0].float().mean()) if x.shape[0] == 3 else int(x.float().mean())
        assert abs(red - (40 + 80 * y)) <= 3, (i, red, y)


def per_class(images) -> list[int]:
    return torch.bincount(images.labels, minlength=3).tolist()


@pytest.fixture(params=["folder", "zip"])
def kind(request):
    return request.param


def make(kind: str, tmp_path: Path, files: dict[str, bytes], name="photos") -> str:
    if kind == "folder":
        return str(write_dir(tmp_path / name, files))
    return str(write_zip(tmp_path / f"{name}.zip", files))


def test_train_test_layout(kind, tmp_path):
    src = make(kind, tmp_path, tree({"train": 10, "test": 4}))
    b = load_dataset(src, val_fraction=0.1)
    assert b.classes == CLASSES and b.channels == 3 and b.name.startswith("photos")
    assert (len(b.train), len(b.val), len(b.test)) == (27, 3, 12)
    assert per_class(b.val) == [1, 1, 1] and per_class(b.test) == [4, 4, 4]
    assert b.train.images.shape == (27, 3, 10, 12) and b.train.images.dtype == torch.uint8
    for split in (b.train, b.val, b.test):
        check_labels(split)
    assert b.skipped == [] and b.summary() == {"name": b.name, "classes": CLASSES, "channels": 3,
                                               "train": 27, "val": 3, "test": 12, "skipped": 0}
    assert not set(b.train.names) & set(b.val.names)
    assert all(n.split("/")[0] == "test" for n in b.test.names)


def test_folder_and_zip_load_the_same_images(tmp_path):
    files = tree({"": 8})
    a = load_dataset(make("folder", tmp_path, files), seed=3)
    z = load_dataset(make("zip", tmp_path, files), seed=3)
    for s1, s2 in ((a.train, z.train), (a.val, z.val), (a.test, z.test)):
        assert s1.names == s2.names and torch.equal(s1.images, s2.images) and torch.equal(s1.labels, s2.labels)


def test_flat_layout_is_split_stratified(kind, tmp_path):
    src = make(kind, tmp_path, tree({"": 10}))
    b = load_dataset(src, test_fraction=0.2, val_fraction=0.1, seed=1)
    assert (len(b.train), len(b.val), len(b.test)) == (22, 2, 6)  # test 20 % of 30, val 10 % of the 24 left
    assert per_class(b.test) == [2, 2, 2] and min(per_class(b.train)) == 7
    assert len({*b.train.names, *b.val.names, *b.test.names}) == 30
    check_labels(b.train)
    again = load_dataset(src, test_fraction=0.2, val_fraction=0.1, seed=1)
    assert again.test.names == b.test.names
    other = load_dataset(src, test_fraction=0.2, val_fraction=0.1, seed=2)
    assert other.test.names != b.test.names


def test_wrapper_folder_and_junk_are_ignored(kind, tmp_path):
    files = tree({"train": 5, "test": 2}, prefix="cifar10")
    files["__MACOSX/cifar10/train/cat/._cat_000.png"] = b"resource fork"
    files["cifar10/train/cat/.DS_Store"] = b"finder"
    files["cifar10/.hidden/x.png"] = image_bytes(0, 0)
    files["cifar10/train/dog/notes.txt"] = b"not an image"
    files["cifar10/README.md"] = b"# data"
    b = load_dataset(make(kind, tmp_path, files), val_fraction=0.2)
    assert b.classes == CLASSES and (len(b.train), len(b.val), len(b.test)) == (12, 3, 6)


def test_split_names_val_valid_and_test(tmp_path):
    both = load_dataset(make("zip", tmp_path, tree({"train": 6, "val": 2, "test": 3}), "both"))
    assert (len(both.train), len(both.val), len(both.test)) == (18, 6, 9)  # nothing carved
    valid_only = load_dataset(make("folder", tmp_path, tree({"Train": 6, "valid": 2}), "v"), val_fraction=0.2)
    assert len(valid_only.test) == 6 and len(valid_only.val) == 4 and len(valid_only.train) == 14


def test_limits_are_exact_stratified_and_decode_only_what_they_keep(kind, tmp_path, monkeypatch):
    src = make(kind, tmp_path, tree({"train": 12, "test": 6}))
    decoded = []
    real = folder_mod.decode_split

    def spy(reader, names, labels, **kw):
        decoded.append(len(names))
        return real(reader, names, labels, **kw)

    monkeypatch.setattr(folder_mod, "decode_split", spy)
    b = load_dataset(src, limit_train=9, limit_test=3, val_fraction=0.25)
    assert (len(b.train), len(b.val), len(b.test)) == (9, 3, 3)
    assert per_class(b.train) == [3, 3, 3] and per_class(b.test) == [1, 1, 1] and per_class(b.val) == [1, 1, 1]
    assert sorted(decoded) == [3, 3, 9]
    full = load_dataset(src, val_fraction=0.25)
    assert set(b.test.names) <= set(full.test.names) and set(b.train.names) <= set(full.train.names)
    assert load_dataset(src, limit_test=3, seed=7, val_fraction=0.25).test.names == b.test.names


def test_mixed_sizes_are_resized_in_memory(kind, tmp_path):
    src = make(kind, tmp_path, tree({"": 6}, sizes=[(12, 10), (30, 18), (9, 9)]))
    b = load_dataset(src, image_size=16)
    assert b.train.images.shape[1:] == (3, 16, 16) and b.train.image_size() == (16, 16)
    check_labels(b.train)
    assert load_dataset(src).test.images.shape[2:] == (224, 224)  # default side


def test_lazy_sets_decode_on_access_pickle_and_load_in_workers(kind, tmp_path, monkeypatch):
    monkeypatch.setattr(folder_mod, "MEMORY_BUDGET", 1000)  # nothing fits: every split stays lazy
    src = make(kind, tmp_path, tree({"train": 8, "test": 2}, sizes=[(12, 10), (20, 20)]))
    b = load_dataset(src, image_size=16, val_fraction=0.25)
    assert b.train.images is None and b.train.image_size() == (16, 16) and b.channels == 3
    x, y = b.train[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8 and isinstance(y, int)
    check_labels(b.train)
    sub = b.train.subset([0, 5, 7])
    assert sub.images is None and len(sub) == 3 and torch.equal(sub[1][0], b.train[5][0])
    clone = pickle.loads(pickle.dumps(b.train))
    assert torch.equal(clone[3][0], b.train[3][0])
    loader = make_loader(b.train, batch_size=5, shuffle=True, seed=0, workers=2)
    assert len(loader) == 4
    seen = []
    for xb, yb in loader:
        assert xb.shape[1:] == (3, 16, 16) and xb.dtype == torch.uint8 and yb.dtype == torch.int64
        seen += yb.tolist()
    assert Counter(seen) == Counter(b.train.labels.tolist())


def test_grey_folders_have_one_channel_and_mixed_have_three(kind, tmp_path):
    grey = load_dataset(make(kind, tmp_path, tree({"": 5}, grey=True), "grey"))
    assert grey.channels == 1 and grey.train.images.shape[1] == 1
    check_labels(grey.train)
    files = tree({"": 5}, grey=True)
    files["cat/colour.png"] = image_bytes(0, 0)
    mixed = load_dataset(make(kind, tmp_path, files, "mixed"))
    assert mixed.channels == 3 and all(s.images.shape[1] == 3 for s in (mixed.train, mixed.val, mixed.test))


@pytest.mark.parametrize("with_cut_file", [False, True])
def test_jpeg_fast_path_gives_pillows_pixels(tmp_path, monkeypatch, with_cut_file):
    files = tree({"": 6}, fmt="JPEG", sizes=[(16, 16)])
    files["owl/grey.jpg"] = image_bytes(2, 0, (16, 16), "JPEG", grey=True)
    if with_cut_file:  # a damaged file sends its whole block back to Pillow, which skips it
        cut = image_bytes(1, 99, (16, 16), "JPEG")
        files["dog/cut.jpg"] = cut[: len(cut) // 2]
    src = make("zip", tmp_path, files)
    for name in ("FAST_JPEG_MIN", "FAST_JPEG_MIN_IMPORTED"):
        monkeypatch.setattr(jpeg, name, 10**9)
    slow = load_dataset(src, skip_bad=True)
    for name in ("FAST_JPEG_MIN", "FAST_JPEG_MIN_IMPORTED"):
        monkeypatch.setattr(jpeg, name, 1)
    real, decoded = jpeg.fast_jpegs, []
    monkeypatch.setattr(jpeg, "fast_jpegs", lambda *a: decoded.append(len(r := real(*a))) or r)
    fast = load_dataset(src, skip_bad=True)
    assert sum(decoded) == (6 if with_cut_file else 19)  # with the cut file, train's block fell back
    assert fast.skipped == slow.skipped == (["dog/cut.jpg in photos.zip"] if with_cut_file else [])
    for a, b in ((slow.train, fast.train), (slow.val, fast.val), (slow.test, fast.test)):
        assert a.names == b.names and torch.equal(a.images, b.images)


def test_parallel_decoding_matches_serial(tmp_path, monkeypatch):
    src = make("zip", tmp_path, tree({"train": 6, "test": 2}))
    serial = load_dataset(src)
    monkeypatch.setattr(decode_pool, "PARALLEL_MIN_NATIVE", 1)
    monkeypatch.setenv("CVDEMO_DECODE_PROCESSES", "2")
    parallel = load_dataset(src)
    assert torch.equal(serial.train.images, parallel.train.images)
    assert serial.test.names == parallel.test.names


# ------------------------------------------------------------------------ bad files


@pytest.mark.parametrize("bad, why", [
    (b"", "the file is empty"),
    (b"<html><body>Sign in to continue</body></html>", "HTML"),
    (image_bytes(1, 5, fmt="JPEG")[:200], "truncated"),
])
def test_unreadable_file_stops_the_load_or_is_skipped(kind, tmp_path, bad, why):
    files = tree({"train": 4, "test": 2})
    files["train/dog/broken.jpg"] = bad
    src = make(kind, tmp_path, files)
    with pytest.raises(DataError) as e:
        load_dataset(src)
    msg = str(e.value)
    assert "broken.jpg" in msg and why in msg and "--skip-bad" in msg
    b = load_dataset(src, skip_bad=True)
    assert len(b.skipped) == 1 and "broken.jpg" in b.skipped[0] and b.summary()["skipped"] == 1
    assert len(b.train) + len(b.val) == 12 and "train/dog/broken.jpg" not in b.train.names + b.val.names


def test_bad_files_in_a_lazy_split_are_skipped_at_load(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_mod, "MEMORY_BUDGET", 1000)
    files = tree({"": 4})
    files["cat/empty.png"] = b""
    b = load_dataset(make("folder", tmp_path, files), skip_bad=True, image_size=8)
    assert b.train.images is None and len(b.skipped) == 1 and "empty.png" in b.skipped[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_damaged_file_found_late_in_a_lazy_split_is_one_sentence(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(folder_mod, "MEMORY_BUDGET", 1000)
    files = tree({"": 4}, fmt="JPEG")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    files["dog/cut.jpg"] = buf.getvalue()[: len(buf.getvalue()) * 2 // 3]  # header intact, pixels not
    b = load_dataset(make("folder", tmp_path, files), skip_bad=True, image_size=8, test_fraction=0.01,
                     val_fraction=0.01)
    assert b.skipped == [] and "dog/cut.jpg" in b.train.names  # lazy: only headers were read
    with pytest.raises(DataError) as e:
        for _ in make_loader(b.train, batch_size=4, shuffle=False, workers=workers):
            pass
    msg = str(e.value)
    assert "dog/cut.jpg is not a readable image (the file is truncated" in msg and "\n" not in msg


@pytest.mark.parametrize("files, match", [
    (tree({"": 4}, classes=["cat"]), r"only one class folder \('cat'\).*at least 2 classes"),
    ({"a.png": image_bytes(0, 0), "b.png": image_bytes(1, 0)}, "no class folders in"),
    ({"cat/notes.txt": b"x", "dog/more.txt": b"y"}, "no image files"),
    ({**tree({"train": 3}), **tree({"test": 2}, classes=["cat", "dog", "emu"])},
     r"the test split .* different class folders from train \(only in train: owl; only in test: emu\)"),
])
def test_layout_errors_say_what_to_do(kind, tmp_path, files, match):
    with pytest.raises(DataError, match=match):
        load_dataset(make(kind, tmp_path, files))


def test_empty_class_folder_is_named(tmp_path):
    root = write_dir(tmp_path / "d", tree({"": 3}))
    (root / "zebra").mkdir()
    with pytest.raises(DataError, match=r"class folder 'zebra' in .* has no images"):
        load_dataset(str(root))
    z = write_zip(tmp_path / "z.zip", tree({"": 3}), [("zebra/", b"")])
    with pytest.raises(DataError, match=r"class folder 'zebra' in z.zip has no images"):
        load_dataset(str(z))


def test_missing_unknown_and_non_data_sources(tmp_path):
    with pytest.raises(DataError, match=r"data folder /no/such/dir does not exist: .*digits"):
        load_dataset("/no/such/dir")
    with pytest.raises(DataError, match=r"zip file .*gone.zip does not exist"):
        load_dataset(str(tmp_path / "gone.zip"))
    with pytest.raises(DataError, match=r"unknown data set 'imagenet': use one of digits, mnist, fashion-mnist, "
                                        r"cifar10, cifar100"):
        load_dataset("imagenet")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="neither a folder nor a .zip"):
        load_dataset(str(tmp_path / "notes.txt"))
    (tmp_path / "fake.zip").write_bytes(b"PK not really")
    with pytest.raises(DataError, match="fake.zip is not a valid zip file"):
        load_dataset(str(tmp_path / "fake.zip"))


# ------------------------------------------------------------------------ unsafe archives


@pytest.mark.parametrize("member", ["../evil.png", "train/../../evil.png", "/etc/evil.png", "C:/evil.png"])
def test_zip_slip_and_absolute_members_are_refused(tmp_path, member):
    z = write_zip(tmp_path / "slip.zip", tree({"": 3}), [(member, image_bytes(0, 0))])
    with pytest.raises(DataError, match=rf"zip member '{member}' in slip.zip points outside the archive"):
        load_dataset(str(z))


def test_symlink_member_is_refused(tmp_path):
    link = zipfile.ZipInfo("cat/link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = write_zip(tmp_path / "link.zip", tree({"": 3}), [(link, b"/etc/passwd")])
    with pytest.raises(DataError, match="'cat/link.png' in link.zip is a symbolic link"):
        load_dataset(str(z))


def test_zip_bomb_is_refused_before_anything_is_read(tmp_path):
    z = write_zip(tmp_path / "bomb.zip", tree({"": 3}), [("cat/huge.png", bytes(30 * 2**20))])
    assert zipfile.ZipFile(z).getinfo("cat/huge.png").compress_size < 100_000
    with pytest.raises(DataError, match=r"'cat/huge.png' in bomb.zip expands .* times to 30 MB \(a zip bomb\?\)"):
        load_dataset(str(z))


def test_absurd_declared_total_is_refused(tmp_path):
    z = write_zip(tmp_path / "big.zip", tree({"": 3}))
    with pytest.raises(DataError, match=r"big.zip declares .* GB of uncompressed data"):
        ZipReader(z, max_total_bytes=100)


def test_damaged_member_is_reported(tmp_path):
    files = tree({"": 3})
    z = write_zip(tmp_path / "dmg.zip", files)
    raw = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("dog/dog_001.png")
    raw[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF  # flip a byte of its data
    z.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"dog/dog_001.png in dmg.zip is damaged"):
        load_dataset(str(z))
    assert load_dataset(str(z), skip_bad=True).skipped == ["dog/dog_001.png in dmg.zip"]


def test_unreadable_folder_file_names_the_file(tmp_path, monkeypatch):
    """A file the user may not read (chmod 0 for anyone but root; simulated, since CI runs as root)."""
    root = write_dir(tmp_path / "d", tree({"": 3}))
    locked = root / "cat" / "cat_000.png"
    real = Path.read_bytes

    def read_bytes(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(DataError, match="cat_000.png"):
        load_dataset(str(root))


def test_small_zip_loads_every_image_once(tmp_path):
    src = make("zip", tmp_path, tree({"": 100}, size=(8, 8)))
    b = load_dataset(src)
    assert len(b.train) + len(b.val) + len(b.test) == 300
    assert np.unique(b.train.labels.numpy()).tolist() == [0, 1, 2]
