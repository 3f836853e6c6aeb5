"""Hostile and odd image files, through the path `cvdemo predict` and the Classify page use
(`read_image_file` / `decode_image`), the data loader's path (`load_dataset`), and the real CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import cvdemo
from hostile import assert_cli_error, assert_sentence, encode, noise_jpeg, png_claiming, write_zip
from PIL import Image

from cvdemo.data import decode_image, load_dataset
from cvdemo.data.archive import DirReader
from cvdemo.data.folder import decode_split
from cvdemo.errors import DataError
from cvdemo.predict import read_image_file


def _broken_png_data() -> bytes:
    data = bytearray(encode(Image.fromarray(np.random.default_rng(2).integers(0, 256, (32, 32, 3), np.uint8)), "PNG"))
    idat = data.find(b"IDAT")
    data[idat + 20:idat + 60] = bytes(40)  # zeros inside the compressed pixel stream
    return bytes(data)


# name, bytes, what the sentence must say is wrong, what it must tell the user to do
BAD_IMAGES = [
    ("truncated.jpg", noise_jpeg()[:700], "truncated or damaged", "replace or remove it"),
    ("empty.jpg", b"", "the file is empty", "replace or remove it"),
    ("page.jpg", b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>", "HTML or XML page",
     "replace or remove it"),
    ("notes.jpg", b"shopping list: milk, eggs\n", "text file, not an image", "replace or remove it"),
    ("data.png", b'{"image": "not really"}', "JSON or text file", "replace or remove it"),
    ("drawing.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "HTML or XML",
     "replace or remove it"),
    ("bomb.png", png_claiming(50_000, 50_000), "too many pixels", "shrink it"),
    ("huge.png", png_claiming(7000, 7000), "7000x7000 pixels, more than the 40,000,000 allowed", "shrink it"),
    ("noise.png", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "not a readable image",
     "replace or remove it"),
    ("cut.png", encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")[:60], "not a readable image",
     "replace or remove it"),
    ("broken.png", _broken_png_data(), "not a readable image", "replace or remove it"),
    ("header-only.gif", b"GIF89a", "not a readable image", "replace or remove it"),
]


@pytest.mark.parametrize("name, data, what, todo", BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_bad_image_file_is_one_sentence(tmp_path, name, data, what, todo):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_image_file(path)
    text = assert_sentence(err.value, what, todo)
    assert text.startswith(str(path)), text  # names the file


def test_bad_images_in_a_data_set_name_the_file_or_are_skipped(tmp_path):
    """The same files inside a class folder: the load stops naming the first, or skips and lists all."""
    root = tmp_path / "photos"
    for i, cls in enumerate(("cat", "dog")):
        (root / cls).mkdir(parents=True)
        for k in range(6):
            (root / cls / f"ok{k}.png").write_bytes(encode(Image.new("RGB", (10, 10), (40 + 80 * i, k, 0)), "PNG"))
    bad = [b for b in BAD_IMAGES if b[0] != "huge.png"]
    for name, data, _, _ in bad:
        (root / "cat" / name).write_bytes(data)
    with pytest.raises(DataError) as err:
        load_dataset(str(root))
    assert_sentence(err.value, "photos/cat/", "or load with skip_bad (--skip-bad)")
    bundle = load_dataset(str(root), skip_bad=True)
    assert sorted(s.rsplit("/", 1)[-1] for s in bundle.skipped) == sorted(b[0] for b in bad)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 12


# -- legitimate but unusual files: they must decode, and correctly --------------------------------

def px(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(int)


def test_cmyk_jpeg_decodes_to_the_right_rgb(tmp_path):
    (tmp_path / "cmyk.jpg").write_bytes(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95))
    out = read_image_file(tmp_path / "cmyk.jpg")
    r, g, b = px(out)[8, 8]
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60  # red ink is red, not inverted


def test_16_bit_png_keeps_its_full_range(tmp_path):
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(16, 16)
    (tmp_path / "deep.png").write_bytes(encode(Image.fromarray(ramp), "PNG"))
    out = px(decode_image((tmp_path / "deep.png").read_bytes(), "deep.png", mode="L"))
    assert out.min() == 0 and out.max() == 255  # not clipped to white, not divided to black
    assert np.abs(out.reshape(-1) - np.arange(256)).max() <= 1


def test_rgba_is_composited_on_white_and_palette_keeps_its_colours(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (200, 10, 10, 255))
    out = px(decode_image(encode(rgba, "PNG"), "a.png"))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (200, 10, 10)
    pal = Image.new("P", (4, 2), 1)
    pal.putpalette([0, 0, 255] + [10, 200, 30] + [0] * 762)
    pal.putpixel((0, 0), 0)
    out = px(decode_image(encode(pal, "PNG", transparency=0), "p.png"))
    assert tuple(out[0, 1]) == (10, 200, 30) and tuple(out[0, 0]) == (255, 255, 255)


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = px(decode_image(buf.getvalue(), "anim.gif"))
    assert out.shape == (8, 8, 3) and out[..., 0].min() > 200 and out[..., 2].max() < 50


def exif_photo(orientation: int) -> tuple[bytes, np.ndarray]:
    """A JPEG whose pixels are stored turned as a camera stores them, tagged with `orientation`, and the
    upright picture it shows: a bright top-left quadrant in a 40 x 24 (w x h) grey frame."""
    upright = np.full((24, 40), 60, np.uint8)
    upright[:12, :20] = 250
    # The inverse of what the viewer applies for each EXIF orientation (Pillow's exif_transpose).
    stored = {1: upright, 2: upright[:, ::-1], 3: upright[::-1, ::-1], 4: upright[::-1],
              5: upright.T, 6: np.rot90(upright, 1), 7: np.rot90(upright, 2).T, 8: np.rot90(upright, -1)}[orientation]
    img = Image.fromarray(np.ascontiguousarray(stored)).convert("RGB")
    exif = img.getexif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes()), upright


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_rotated_photo_comes_out_upright(tmp_path, orientation):
    data, upright = exif_photo(orientation)
    (tmp_path / "phone.jpg").write_bytes(data)
    out = px(read_image_file(tmp_path / "phone.jpg")).mean(axis=2)
    assert out.shape == upright.shape, (orientation, out.shape)
    assert np.abs(out - upright).mean() < 10, orientation


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchvision's notice about its image decoders
def test_exif_rotation_also_applies_in_data_sets_and_the_fast_jpeg_path(tmp_path):
    """Training images go through decode_split (Pillow, or torchvision for many JPEGs): upright in both."""
    folder = tmp_path / "set"
    folder.mkdir()
    data, upright = exif_photo(6)
    (folder / "phone.jpg").write_bytes(data)
    for fast in (False, True):
        d = decode_split(DirReader(folder), ["phone.jpg"], np.zeros(1, np.int64), size=64, skip_bad=False,
                         fast_jpeg=fast)
        img = d.array[0].astype(int).mean(axis=0)  # (c, H, W) -> (H, W)
        assert img.shape == upright.shape and np.abs(img - upright).mean() < 10, fast


def test_a_data_set_of_every_odd_format_and_size_loads_as_one_tensor(tmp_path):
    """CMYK, 16-bit, RGBA, palette, animated GIF, grey, 1-bit, EXIF-rotated and mismatched sizes, in a zip."""
    odd = [encode(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG"),
           encode(Image.fromarray(np.full((17, 23), 40000, np.uint16)), "PNG"),
           encode(Image.new("RGBA", (64, 48), (10, 200, 10, 128)), "PNG"),
           encode(Image.new("P", (9, 31), 3), "PNG"),
           exif_photo(8)[0],
           encode(Image.new("L", (100, 7), 77), "PNG"),
           encode(Image.new("1", (13, 13), 1), "BMP"),
           encode(Image.new("RGB", (5, 50), (1, 2, 3)), "GIF")]
    exts = ["jpg", "png", "png", "png", "jpg", "png", "bmp", "gif"]
    files = {f"{cls}/{k}.{exts[k]}": data for cls in ("odd", "even") for k, data in enumerate(odd)}
    bundle = load_dataset(str(write_zip(tmp_path / "odd.zip", files)), image_size=32)
    assert bundle.channels == 3 and bundle.skipped == []
    from cvdemo.data import make_loader, to_model_input

    for split in (bundle.train, bundle.val, bundle.test):
        # each split one uint8 tensor (N, 3, H, W): mixed sizes resized to 32, a uniform split kept as it is
        assert split.images is not None and split.images.dim() == 4 and split.images.shape[1] == 3
        for x, _ in make_loader(split, batch_size=16, shuffle=False):
            assert to_model_input(x, size=32, mean=(0.5,) * 3, std=(0.25,) * 3, channels=3).shape[1:] == (3, 32, 32)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 16


# -- the command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, data, what", [
    ("page.jpg", b"<html><body>Access denied</body></html>", "HTML or XML page"),
    ("bomb.png", png_claiming(50_000, 50_000), "too many pixels"),
], ids=["html", "bomb"])
def test_cli_predict_with_a_hostile_image_is_one_line_and_exit_2(existing_run, tmp_path, name, data, what):
    (tmp_path / name).write_bytes(data)
    proc = cvdemo("predict", str(existing_run), str(tmp_path / name), timeout=120)
    assert_cli_error(proc, "predict", name, what, "replace or remove it" if "HTML" in what else "shrink it")
