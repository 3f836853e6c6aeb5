"""Hostile uploads in a real browser: each gives an error sentence on the page, never a traceback,
and the app keeps answering afterwards (issue 8)."""

import io
import sys
import zipfile
from pathlib import Path

import pytest
from shots import screenshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from hostile import image_tree, noise_jpeg, patch_central_sizes, png_claiming  # noqa: E402

pytestmark = pytest.mark.browser


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def bomb(tmp_path: Path) -> bytes:
    """A small zip whose directory claims 4 GB members (the shape of a crafted zip bomb)."""
    path = tmp_path / "bomb.zip"
    path.write_bytes(zipped(image_tree()))
    patch_central_sizes(path, lambda name: 4_000_000_000)
    return path.read_bytes()


BAD_IMAGES = {
    "truncated.jpg": noise_jpeg()[:300],
    "empty.png": b"",
    "page.jpg": b"<!doctype html><html><body>not a picture</body></html>",
    "bomb.png": png_claiming(50_000, 50_000),
}


ERROR = "[data-testid=stAlertContentError]"


def alerts(page) -> list[str]:
    return [t.strip() for t in page.get_by_test_id("stAlert").all_inner_texts()]


def assert_no_traceback(page) -> None:
    assert page.get_by_test_id("stException").count() == 0
    assert "Traceback" not in page.inner_text("body")


def still_answers(page, url: str) -> None:
    """The app still serves a page after the bad input: Home renders its heading."""
    page.goto(url)
    page.locator("h1", has_text="image classification playground").first.wait_for(timeout=60_000)


def test_bad_photos_on_classify_each_get_a_sentence_and_the_good_one_is_classified(server, page, cat_png):
    page.goto(server["url"] + "/classify")
    page.locator("h1", has_text="Classify").first.wait_for(timeout=60_000)
    files = [{"name": name, "mimeType": "image/jpeg" if name.endswith(".jpg") else "image/png", "buffer": data}
             for name, data in BAD_IMAGES.items()]
    files.append({"name": "cat.png", "mimeType": "image/png", "buffer": cat_png.read_bytes()})
    page.locator("input[type=file]").set_input_files(files)
    page.locator("h3", has_text="·").first.wait_for(timeout=90_000)  # the cat still gets its top-k
    messages = alerts(page)
    for name in BAD_IMAGES:
        assert sum(name in m for m in messages) == 1, (name, messages)
    assert_no_traceback(page)
    screenshot(page, "classify-bad-uploads")
    still_answers(page, server["url"])


def test_hostile_zips_on_the_data_page_each_get_a_sentence(server, page, tmp_path):
    zips = {
        "slip.zip": zipped({"../../evil/cat/a.png": image_tree()["cat/cat_0.png"], **image_tree()}),
        "absolute.zip": zipped({"/tmp/evil/cat/a.png": image_tree()["cat/cat_0.png"], **image_tree()}),
        "bomb.zip": bomb(tmp_path),
        "flat.zip": zipped({"a.png": image_tree()["cat/cat_0.png"], "b.png": image_tree()["dog/dog_0.png"]}),
        "nested.zip": zipped({"inner.zip": zipped(image_tree())}),
        "notazip.zip": b"PK\x03\x04 this is not really a zip archive",
    }
    page.goto(server["url"] + "/data")
    page.locator("h1", has_text="Data").first.wait_for(timeout=60_000)
    page.get_by_text("A zip file", exact=True).click()
    upload = page.locator("input[type=file]")
    upload.wait_for(state="attached", timeout=30_000)
    seen = []
    for name, data in zips.items():
        upload.set_input_files({"name": name, "mimeType": "application/zip", "buffer": data})  # replaces the last
        page.wait_for_function(
            "([sel, seen]) => document.body.innerText.includes('Traceback') || Array.from("
            "document.querySelectorAll(sel)).some(e => e.innerText.trim() && !seen.includes(e.innerText.trim()))",
            arg=[ERROR, seen], timeout=60_000)
        assert_no_traceback(page)
        text = page.locator(ERROR).first.inner_text().strip()
        assert len(text) > 20 and "\n" not in text.removeprefix("warning").strip(), (name, text)  # one sentence
        if name == "flat.zip":  # shown as written, not as Markdown italics
            assert "cats/*.jpg" in text, text
        seen.append(text)
    screenshot(page, "data-bad-zip")
    still_answers(page, server["url"])
    assert list((server["runs"]).glob("*/config.json")) == []  # nothing was started by bad data
    assert not (Path("/tmp/evil").exists())
