"""Property-based fuzzing (hypothesis), bounded: the config parser, the zip reader and the image decoder
either succeed or raise a CvdemoError (one sentence for the user), never anything else, whatever bytes
or values they are given. Random inputs and mutations of valid ones; derandomized so CI is repeatable."""

from __future__ import annotations

import io
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile import encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cvdemo.config import RunConfig
from cvdemo.data import decode_image, load_dataset
from cvdemo.errors import CvdemoError

# CVDEMO_FUZZ_EXAMPLES=5000 explores longer, with fresh random inputs each time (the suite uses 200, repeatable).
EXAMPLES = int(os.environ.get("CVDEMO_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 200, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_message(e: CvdemoError) -> None:
    text = str(e)
    assert text and "\n" not in text and len(text) < 1000, text


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A valid file with a few bytes flipped, spans overwritten with boundary values, cut or spliced."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "boundary", "cut", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif op == "boundary":  # sizes and offsets set to 0, -1 or huge
            data[i:i + 4] = draw(st.sampled_from([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f",
                                                   b"\x00\x00\x01\x00"]))
        elif op == "cut":
            data = data[:i]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[i:i + draw(st.integers(1, 64))]
    return bytes(data)


# -- config ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
FIELDS = {s: list(RunConfig().to_dict()[s]) for s in ("data", "model", "train")}


@st.composite
def near_valid_configs(draw) -> dict:
    """A valid config with some fields given random values (often the right type, often not)."""
    raw = RunConfig().to_dict()
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(list(FIELDS)))
        raw[section][draw(st.sampled_from(FIELDS[section]))] = draw(json_values)
    return raw


@FUZZ
@given(st.one_of(json_values, near_valid_configs()))
def test_fuzz_config_from_dict(raw):
    try:
        config = RunConfig.from_dict(raw)
    except CvdemoError as e:
        check_message(e)
        return
    assert RunConfig.from_dict(config.to_dict()) == config  # what it accepts, it round-trips
    for value in (config.train.lr, config.train.momentum, config.data.val_fraction):
        assert math.isfinite(value)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                 mutated([RunConfig().to_json().encode(), b'{"train": {"epochs": 3, "milestones": [1, 2]}}'])))
def test_fuzz_config_from_json(data):
    try:
        RunConfig.from_json(data, "config file fuzz.json")
    except CvdemoError as e:
        check_message(e)


# -- zip reader ------------------------------------------------------------------------------------

def _zip(files: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


_PNG = [encode(Image.new("RGB", (6, 5), (30 + 50 * i, 9, 9)), "PNG") for i in range(2)]
ZIP_SEEDS = [
    _zip({f"{c}/{k}.png": _PNG[i] for i, c in enumerate(("cat", "dog")) for k in range(3)}),
    _zip({f"{s}/{c}/{k}.png": _PNG[i] for s in ("train", "test") for i, c in enumerate("ab") for k in range(2)},
         zipfile.ZIP_STORED),
    _zip({f"{c}/{k}.png": _PNG[i] for i, c in enumerate(("x", "y")) for k in range(2)}, zipfile.ZIP_BZIP2),
    _zip({f"{c}/{k}.png": _PNG[i] for i, c in enumerate(("p", "q")) for k in range(2)}, zipfile.ZIP_LZMA),
]


@FUZZ
@given(st.one_of(st.binary(max_size=400), mutated(ZIP_SEEDS)))
def test_fuzz_zip_reader(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.zip"
        path.write_bytes(data)
        try:
            bundle = load_dataset(str(path), image_size=8)
        except CvdemoError as e:
            check_message(e)
            return
        assert len(bundle.classes) >= 2
        for split in (bundle.train, bundle.val, bundle.test):  # every image it kept can be read
            for i in range(len(split)):
                split[i]
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["upload.zip"]  # nothing extracted


# -- image decoder ---------------------------------------------------------------------------------

_photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
IMAGE_SEEDS = [encode(_photo, "PNG"), encode(_photo, "JPEG"), encode(_photo, "JPEG", progressive=True),
               encode(_photo, "GIF"), encode(_photo, "BMP"), encode(_photo, "WEBP"), encode(_photo, "TIFF"),
               encode(_photo.convert("CMYK"), "JPEG"), encode(_photo.convert("P"), "PNG", transparency=0),
               encode(Image.fromarray(np.arange(120, dtype=np.uint16).reshape(12, 10) * 500), "PNG")]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's "Corrupt EXIF data" on mangled files
@FUZZ
@given(st.one_of(st.binary(max_size=200), mutated(IMAGE_SEEDS)), st.sampled_from(["RGB", "L"]))
def test_fuzz_image_decoder(data, mode):
    try:
        img = decode_image(data, "fuzz.png", mode=mode)
    except CvdemoError as e:
        check_message(e)
        return
    assert img.mode == mode and img.size[0] * img.size[1] <= 40_000_000
    np.asarray(img)  # the pixels are really there
