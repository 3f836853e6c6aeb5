"""cvdemo.uploads: what the app stores when someone uploads a zip or labelled images."""

import io

import pytest
from PIL import Image

from cvdemo import runs, uploads
from cvdemo.errors import CvdemoError


def png(color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_live_in_their_own_folder_under_the_runs_root(tmp_path):
    assert uploads.uploads_dir() == runs.default_root() / uploads.UPLOADS
    assert uploads.uploads_dir(tmp_path).is_dir() and uploads.uploads_dir(tmp_path).parent == tmp_path


def test_an_unusable_uploads_folder_is_one_sentence(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(CvdemoError, match="cannot create the uploads folder"):
        uploads.uploads_dir(tmp_path / "file")


def test_sizes_over_the_limit_are_refused_with_the_file_name():
    uploads.check_size("a.png", bytes(2**20), 1)
    with pytest.raises(CvdemoError, match=r"a\.png is 2 MB, more than the 1 MB allowed"):
        uploads.check_size("a.png", bytes(2 * 2**20), 1)


def test_a_zip_is_named_by_its_content_and_stored_once(tmp_path):
    data = b"PK\x05\x06" + bytes(18)
    first = uploads.save_zip(data, tmp_path)
    assert first.parent == tmp_path / uploads.UPLOADS and first.name.startswith("upload-") and first.suffix == ".zip"
    assert first.read_bytes() == data
    assert uploads.save_zip(data, tmp_path) == first
    assert uploads.save_zip(data + b"x", tmp_path) != first


def test_the_zip_limit_is_read_when_used(tmp_path, monkeypatch):
    monkeypatch.setenv("CVDEMO_MAX_ZIP_MB", "1")
    with pytest.raises(CvdemoError, match="the zip file is 2 MB"):
        uploads.save_zip(bytes(2 * 2**20), tmp_path)


@pytest.mark.parametrize("text, name", [("cat", "cat"), ("  big dog ", "big dog"), ("../../etc", "etc"),
                                        ("a/b\\c", "abc"), ("x" * 80, "x" * 60)])
def test_class_names_become_safe_folder_names(text, name):
    assert uploads.safe_class_name(text) == name


@pytest.mark.parametrize("text", ["", "   ", "../..", "/*?"])
def test_a_class_name_without_letters_or_digits_is_refused(text):
    with pytest.raises(CvdemoError, match="no letters or digits"):
        uploads.safe_class_name(text)


def test_labelled_images_become_a_class_folder_data_set(tmp_path):
    items = [("red", "../a b.PNG", png()), ("blue", "b.exe", png((0, 0, 200))), ("red", "c.jpg", png())]
    folder = uploads.save_labelled_images(items, tmp_path)
    assert folder.parent == tmp_path / uploads.UPLOADS and folder.name.startswith("images-")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "blue/0001-b.png", "red/0000-ab.png", "red/0002-c.jpg"]
    assert uploads.save_labelled_images(items, tmp_path) == folder          # the same upload: the same folder
    assert not list((tmp_path / uploads.UPLOADS).glob("*.tmp*"))            # no half-written folder left


def test_labelled_images_need_two_classes_and_small_files(tmp_path, monkeypatch):
    with pytest.raises(CvdemoError, match="at least two classes"):
        uploads.save_labelled_images([("a", "a.png", png()), ("a/", "b.png", png())], tmp_path)
    monkeypatch.setenv("CVDEMO_MAX_IMAGE_MB", "1")
    with pytest.raises(CvdemoError, match="big.png is 2 MB"):
        uploads.save_labelled_images([("a", "a.png", png()), ("b", "big.png", bytes(2 * 2**20))], tmp_path)
