"""Hostile and odd zips and folders, through `load_dataset` (what `cvdemo train --data` and the Data page
call) and the real CLI. Nothing is ever extracted to disk, so nothing may land outside the archive."""

from __future__ import annotations

import stat
import zipfile

import pytest
from helpers import cvdemo
from hostile import (
    TINY_FLAGS,
    assert_cli_error,
    assert_sentence,
    class_image,
    image_tree,
    patch_central_sizes,
    set_flag_bits,
    write_zip,
)

from cvdemo import runs
from cvdemo.data import load_dataset
from cvdemo.errors import DataError


def symlink_member(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so the mode bits count
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def slip(member):
    return lambda p: write_zip(p, image_tree(), [(member, class_image(0, 9))])


def ratio_bomb(p):
    return write_zip(p, image_tree(), [("cat/huge.png", bytes(30 * 2**20))])  # 30 MB of zeros -> ~30 kB


def declared_total_bomb(p):
    """2,100 members that each claim 10 MB (under the per-member check): 21 GB declared."""
    files = {**image_tree(), **{f"dog/pad{k:04d}.bin": b"" for k in range(2100)}}
    write_zip(p, files, method=zipfile.ZIP_STORED)
    patch_central_sizes(p, lambda name: 10 * 2**20 if name.endswith(".bin") else None)
    return p


def many_small_bombs(p):
    """200 members of 8 MB of zeros each: none over the per-member limit, 1.6 GB from a few MB."""
    files = {**image_tree(), **{f"dog/pad{k:03d}.png": b"" for k in range(200)}}
    write_zip(p, files)
    patch_central_sizes(p, lambda name: 8 * 2**20 if "pad" in name else None)
    return p


def encrypted(p):
    write_zip(p, image_tree())
    set_flag_bits(p, "dog/dog_1.png", 0x1)
    return p


def damaged(p):
    write_zip(p, image_tree())
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo("dog/dog_2.png")
    raw[info.header_offset + 30 + len(info.filename) + 8] ^= 0xFF
    p.write_bytes(bytes(raw))
    return p


def html_zip(p):
    p.write_bytes(b"<html><body>Not Found</body></html>")  # a failed download saved as .zip
    return p


def truncated(p):
    write_zip(p, image_tree())
    p.write_bytes(p.read_bytes()[:-40])  # the end of the central directory is gone
    return p


# id, how to build the archive, what the sentence says is wrong, what it says to do
BAD_ARCHIVES = [
    ("dotdot-member", slip("../evil.png"), "'../evil.png' in bad.zip points outside the archive",
     "re-create it with relative paths"),
    ("nested-dotdot", slip("cat/../../../tmp/evil.png"), "points outside the archive", "relative paths"),
    ("absolute-member", slip("/etc/cron.d/evil.png"), "'/etc/cron.d/evil.png' in bad.zip points outside",
     "relative paths"),
    ("windows-dotdot", slip("cat\\..\\..\\evil.png"), "points outside the archive", "relative paths"),
    ("drive-letter", slip("C:/Windows/evil.png"), "points outside the archive", "relative paths"),
    ("symlink-member", lambda p: write_zip(p, image_tree(), [(symlink_member("cat/link.png", "/etc/passwd"),
                                                             b"/etc/passwd")]),
     "'cat/link.png' in bad.zip is a symbolic link", "re-create it with the files themselves"),
    ("bomb-by-ratio", ratio_bomb, "expands", "(a zip bomb?): refusing this zip"),
    ("bomb-by-declared-total", declared_total_bomb, "declares 22.0 GB of uncompressed data",
     "use a smaller archive or an extracted folder"),
    ("bomb-by-many-members", many_small_bombs, "over 208 members (a zip bomb?)",
     "re-create it from the image files themselves"),
    ("no-class-folders", lambda p: write_zip(p, {"a.png": class_image(0, 0), "b.png": class_image(1, 0)}),
     "no class folders in bad.zip", "put the images in one folder per class"),
    ("one-class", lambda p: write_zip(p, image_tree(classes=("cat",))), "only one class folder ('cat')",
     "needs at least 2 classes"),
    ("empty-class", lambda p: write_zip(p, image_tree(), [("zebra/", b"")]), "class folder 'zebra'",
     "has no images"),
    ("nested-zips", lambda p: write_zip(p, {"photos.zip": b"PK\x05\x06" + bytes(18), "more/extra.zip": b"x"}),
     "holds no images, only another zip (more/extra.zip and 1 more)", "extract it and give that zip"),
    ("no-images", lambda p: write_zip(p, {"cat/readme.txt": b"hi", "dog/list.csv": b"a,b"}),
     "no image files", "put images in one folder per class"),
    ("split-classes-differ", lambda p: write_zip(p, {**image_tree(prefix="train"),
                                                      **image_tree(classes=("cat", "emu"), prefix="test")}),
     "different class folders from train (only in train: dog; only in test: emu)",
     "give every split the same class folders"),
    ("html-renamed-zip", html_zip, "is not a valid zip file",
     "re-create it, or point to a folder"),
    ("truncated-zip", truncated, "is not a valid zip file", "re-create it"),
    ("encrypted-member", encrypted, "dog/dog_1.png in bad.zip is encrypted", "re-create the zip without a password"),
    ("damaged-member", damaged, "dog/dog_2.png in bad.zip is damaged", "re-create the zip"),
]


@pytest.mark.parametrize("build, what, todo", [b[1:] for b in BAD_ARCHIVES], ids=[b[0] for b in BAD_ARCHIVES])
def test_bad_archive_is_one_sentence(tmp_path, build, what, todo):
    (tmp_path / "upload").mkdir()
    path = build(tmp_path / "upload" / "bad.zip")
    with pytest.raises(DataError) as err:
        load_dataset(str(path))
    assert_sentence(err.value, what, todo)
    assert [p.name for p in (tmp_path / "upload").iterdir()] == ["bad.zip"]  # nothing extracted beside it


def test_class_emptied_by_skipping_unreadable_files_is_named(tmp_path):
    files = {**image_tree(n=6), **{f"owl/{k}.png": b"<html>not an image</html>" for k in range(5)}}
    with pytest.raises(DataError) as err:
        load_dataset(str(write_zip(tmp_path / "owls.zip", files)), skip_bad=True)
    assert_sentence(err.value, "class 'owl' in owls.zip has no readable images left after skipping 5",
                    "replace those files or remove the class folder")


def test_non_ascii_and_space_laden_class_names_load_as_they_are(tmp_path):
    classes = ("chat noir", "été  chaud", "猫 neko", "Ünïcödé-ß")
    bundle = load_dataset(str(write_zip(tmp_path / "names.zip", image_tree(classes=classes, n=5))))
    assert bundle.classes == sorted(classes)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 20
    for split in (bundle.train, bundle.val, bundle.test):  # each image kept its class (red level = label)
        for i in range(len(split)):
            x, y = split[i]
            assert abs(int(x[0].float().mean()) - (30 + 50 * classes.index(bundle.classes[y]))) <= 2


def test_mismatched_image_sizes_become_one_tensor(tmp_path):
    files = {f"{c}/{k}.png": class_image(i, k, size=(8 + 13 * k, 50 - 7 * k)) for i, c in enumerate(("a", "b"))
             for k in range(6)}
    bundle = load_dataset(str(write_zip(tmp_path / "sizes.zip", files)), image_size=24)
    assert bundle.train.images is not None and tuple(bundle.train.images.shape[1:]) == (3, 24, 24)


def test_other_compression_methods_are_read(tmp_path):
    files = image_tree(n=4)
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA, zipfile.ZIP_STORED):
        bundle = load_dataset(str(write_zip(tmp_path / f"m{method}.zip", files, method=method)))
        assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 8


@pytest.mark.parametrize("build, what", [(slip("../../evil.png"), "points outside the archive"),
                                         (ratio_bomb, "(a zip bomb?)")], ids=["zip-slip", "zip-bomb"])
def test_cli_train_on_a_hostile_zip_is_one_line_and_exit_2(runs_root, tmp_path, build, what):
    path = build(tmp_path / "upload.zip")
    flags = [f for f in TINY_FLAGS]
    flags[flags.index("digits")] = str(path)
    proc = cvdemo("train", *flags, timeout=120)
    assert_cli_error(proc, "train", "upload.zip", what)
    failed = [r for r in runs.list_runs(runs_root) if r.state == "failed"]
    assert len(failed) == 1 and what in failed[0].message  # recorded in its own new run folder
