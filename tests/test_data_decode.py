"""decode_image: every kind of file a user can drop in, and every kind of file that must be refused."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cvdemo.data import decode_image
from cvdemo.data.jpeg import jpeg_header
from cvdemo.errors import DataError


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(int)


def test_grayscale_png_decodes_to_l_and_to_equal_rgb_channels():
    a = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    data = encode(Image.fromarray(a, "L"), "PNG")
    grey = decode_image(data, "g.png", mode="L")
    assert grey.mode == "L" and (pixels(grey) == a).all()
    rgb = decode_image(data, "g.png")
    assert rgb.mode == "RGB" and rgb.size == (8, 8)
    assert all((pixels(rgb)[..., c] == a).all() for c in range(3))


def test_rgb_to_l_uses_luma():
    data = encode(Image.new("RGB", (4, 4), (255, 0, 0)), "PNG")
    assert pixels(decode_image(data, "red.png", mode="L"))[0, 0] == 76  # 0.299 * 255


def test_palette_with_transparency_is_composited_on_white():
    img = Image.new("P", (4, 2), 0)
    img.putpalette([0, 0, 255] + [255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 1)
    data = encode(img, "PNG", transparency=0)  # index 0 (blue) is transparent
    out = pixels(decode_image(data, "p.png"))
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[1, 3]) == (255, 255, 255)


def test_palette_without_transparency_keeps_its_colours():
    img = Image.new("P", (2, 2), 1)
    img.putpalette([0, 0, 0] + [10, 200, 30] + [0] * 762)
    assert tuple(pixels(decode_image(encode(img, "PNG"), "p.png"))[0, 0]) == (10, 200, 30)


def test_rgba_and_la_are_composited_on_white():
    rgba = Image.new("RGBA", (2, 2), (255, 0, 0, 128))
    out = pixels(decode_image(encode(rgba, "PNG"), "a.png"))[0, 0]
    assert out[0] == 255 and abs(out[1] - 127) <= 1 and abs(out[2] - 127) <= 1
    clear = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert (pixels(decode_image(encode(clear, "PNG"), "c.png")) == 255).all()
    la = Image.new("LA", (2, 2), (0, 64))
    assert abs(pixels(decode_image(encode(la, "PNG"), "la.png", mode="L"))[0, 0] - 191) <= 1


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)  # red ink
    out = decode_image(data, "cmyk.jpg")
    r, g, b = pixels(out)[8, 8]
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_16_bit_png_maps_to_the_full_8_bit_range():
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(16, 16)
    img = Image.fromarray(ramp)
    assert img.mode.startswith("I;16")
    out = pixels(decode_image(encode(img, "PNG"), "deep.png", mode="L"))
    assert out.min() == 0 and out.max() == 255
    assert (np.diff(out.reshape(-1)) >= 0).all()  # still a ramp, not clipped
    assert np.abs(out.reshape(-1) - np.arange(256)).max() <= 1
    assert pixels(decode_image(encode(Image.fromarray(np.full((2, 2), 32768, np.uint16)), "PNG"), "m.png",
                               mode="L"))[0, 0] == 128


def test_exif_orientation_6_comes_out_upright():
    a = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high: left half black, right half white
    a[:, 20:] = 255
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = encode(img, "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(data, "phone.jpg")
    assert out.size == (20, 40)  # now 20 wide, 40 high
    o = pixels(out).mean(axis=2)
    assert o[:18].mean() < 20 and o[22:].mean() > 235  # the left half went to the top
    assert np.abs(o - np.rot90(a.mean(axis=2), k=-1)).mean() < 8


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = pixels(decode_image(buf.getvalue(), "anim.gif"))
    assert out[..., 0].min() > 200 and out[..., 2].max() < 50


def big_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims width x height pixels (CRC fixed up)."""
    data = bytearray(encode(Image.new("1", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decompression_bomb_is_refused_from_the_header(monkeypatch):
    bomb, big = big_png_header(50_000, 50_000), big_png_header(7000, 7000)

    def no_decoding(self):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(Image.Image, "load", no_decoding)  # refused from the header alone
    with pytest.raises(DataError, match=r"bomb.png .*(pixels|bomb)"):
        decode_image(bomb, "bomb.png")
    with pytest.raises(DataError, match=r"7000x7000 pixels, more than the 40,000,000 allowed"):
        decode_image(big, "big.png")  # under Pillow's own limit, over ours
    monkeypatch.undo()
    with pytest.raises(DataError, match="more than the 100 allowed"):
        decode_image(encode(Image.new("RGB", (11, 10)), "PNG"), "small.png", max_pixels=100)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "HTML"),
    (b"just some notes\n", "text"),
    (bytes(range(256)) * 4, "not an image"),
])
def test_non_images_are_one_sentence_errors(data, reason):
    with pytest.raises(DataError) as e:
        decode_image(data, "photo.jpg")
    msg = str(e.value)
    assert msg.startswith("photo.jpg is not a readable image") and reason in msg and "\n" not in msg


def test_truncated_jpeg_is_an_error():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG")
    with pytest.raises(DataError, match=r"cut.jpg is not a readable image \(the file is truncated"):
        decode_image(data[: len(data) // 2], "cut.jpg")


def test_bad_mode_is_a_programming_error():
    with pytest.raises(ValueError):
        decode_image(encode(Image.new("RGB", (2, 2)), "PNG"), "x.png", mode="CMYK")


def test_jpeg_header_reads_size_and_components():
    colour = Image.fromarray(np.random.default_rng(1).integers(0, 256, (21, 37, 3), dtype=np.uint8))
    assert jpeg_header(encode(colour, "JPEG")) == (37, 21, 3)
    assert jpeg_header(encode(colour, "JPEG", progressive=True)) == (37, 21, 3)
    assert jpeg_header(encode(colour.convert("L"), "JPEG")) == (37, 21, 1)
    assert jpeg_header(encode(Image.new("CMYK", (5, 6)), "JPEG"))[2] == 4
    assert jpeg_header(encode(colour, "PNG")) is None
    assert jpeg_header(b"\xff\xd8\xff") is None
