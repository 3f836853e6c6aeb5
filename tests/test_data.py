"""The data layer: digits, splits, limits, statistics, augmentation, batches and model input."""

import math
import pickle
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cvdemo.data import (
    AUGMENT_PRESETS,
    SOURCES,
    DataBundle,
    ImageSet,
    compute_mean_std,
    load_dataset,
    make_loader,
    prepare_image,
    stratified_split,
    to_model_input,
    train_transform,
)
from cvdemo.data.builtin import digits_arrays
from cvdemo.errors import DataError


def rows(images: torch.Tensor, labels: torch.Tensor) -> Counter:
    """A multiset of (pixels, label) records, to compare splits with the full data set."""
    return Counter((x.numpy().tobytes(), int(y)) for x, y in zip(images, labels, strict=True))


# ------------------------------------------------------------------------ digits


def test_digits_loads_a_fixed_stratified_60_20_20_split():
    b = load_dataset("digits")
    assert isinstance(b, DataBundle) and b.name == "digits" and b.channels == 1
    assert b.classes == [str(i) for i in range(10)]
    assert (len(b.train), len(b.val), len(b.test)) == (1078, 359, 360)
    images, labels = digits_arrays()
    totals = np.bincount(labels.numpy(), minlength=10)
    for split in (b.train, b.val, b.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, 8, 8)
        assert split.labels.dtype == torch.int64 and split.image_size() == (8, 8)
        counts = np.array(split.class_counts(10))
        assert np.abs(counts - totals * len(split) / 1797).max() <= 1.5  # every class, in proportion
    assert int(b.train.images.max()) == 255 and int(b.train.images.min()) == 0
    assert images.shape == (1797, 1, 8, 8)
    everything = sum((rows(s.images, s.labels) for s in (b.train, b.val, b.test)), Counter())
    assert everything == rows(images, labels)  # a partition: nothing lost, nothing twice


def test_digits_split_ignores_seed_and_fractions():
    a = load_dataset("digits")
    b = load_dataset("digits", seed=123, val_fraction=0.3, test_fraction=0.4)
    for s1, s2 in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        assert torch.equal(s1.images, s2.images) and torch.equal(s1.labels, s2.labels)


def test_digits_pixels_match_scikit_learn_scaled_to_255():
    images, labels = digits_arrays()
    import gzip
    import importlib.util

    path = importlib.util.find_spec("sklearn").submodule_search_locations[0] + "/datasets/data/digits.csv.gz"
    first = np.array(gzip.open(path, "rt").readline().split(","), dtype=float)
    assert np.allclose(images[0, 0].numpy().reshape(-1), np.rint(first[:64] * 255 / 16))
    assert int(labels[0]) == int(first[64])


def test_limits_are_exact_stratified_subsets_that_do_not_move_with_the_seed():
    full = load_dataset("digits")
    b = load_dataset("digits", limit_train=100, limit_test=50, seed=4)
    assert (len(b.train), len(b.val), len(b.test)) == (100, 50, 50)
    assert b.train.class_counts(10) == [10] * 10 and b.test.class_counts(10) == [5] * 10
    assert not rows(b.train.images, b.train.labels) - rows(full.train.images, full.train.labels)
    assert not rows(b.test.images, b.test.labels) - rows(full.test.images, full.test.labels)
    again = load_dataset("digits", limit_train=100, limit_test=50, seed=9)
    assert torch.equal(again.test.images, b.test.images) and torch.equal(again.train.images, b.train.images)
    assert len(load_dataset("digits", limit_train=5000).train) == 1078
    uneven = load_dataset("digits", limit_train=37)
    assert len(uneven.train) == 37 and sorted(uneven.train.class_counts(10)) == [3] * 3 + [4] * 7


@pytest.mark.parametrize("kw, match", [
    ({"val_fraction": 1.5}, "val_fraction"), ({"test_fraction": -0.1}, "test_fraction"),
    ({"limit_train": 0}, "limit_train"), ({"limit_test": 2.5}, "limit_test"),
])
def test_bad_arguments_are_data_errors(kw, match):
    with pytest.raises(DataError, match=match):
        load_dataset("digits", **kw)


def test_summary_and_sources():
    assert SOURCES == ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100")
    assert AUGMENT_PRESETS == ("none", "standard", "rrc", "trivialaugment")
    s = load_dataset("digits", limit_train=20).summary()
    assert s == {"name": "digits", "classes": [str(i) for i in range(10)], "channels": 1,
                 "train": 20, "val": 359, "test": 360, "skipped": 0}


# ------------------------------------------------------------------------ stratified splits


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 30), min_size=1, max_size=6),
       fractions=st.lists(st.floats(0.0, 0.45), min_size=1, max_size=2), seed=st.integers(0, 2**31))
def test_stratified_split_is_an_exact_proportional_partition(counts, fractions, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    parts = stratified_split(labels, fractions, seed)
    n = len(labels)
    assert len(parts) == len(fractions) + 1
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(n))  # disjoint and complete
    quotas = [f * n for f in fractions]
    for part, q in zip(parts, quotas, strict=False):
        assert abs(len(part) - q) < 1  # exact totals (largest remainder)
    again = stratified_split(labels, fractions, seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    if min(counts) >= 2 * len(parts):  # (tiny classes are bent by the one-each rule)
        for part, size in zip(parts, [*quotas, n - sum(quotas)], strict=True):
            for c, m in enumerate(counts):  # each class's share is close to proportional
                assert abs(int((labels[part] == c).sum()) - m * size / n) < 2
    # every class keeps a member in the rest (the training part) when there is room for it
    if all(m >= len(parts) for m in counts) and len(parts[-1]) >= len(counts):
        assert set(labels[parts[-1]].tolist()) == set(labels.tolist())


def test_stratified_split_gives_every_class_a_share_when_possible():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 3)
    test, val, train = stratified_split(labels, [0.2, 0.1], 0)
    assert (len(test), len(val), len(train)) == (17, 8, 58)
    for part in (test, val, train):
        assert set(labels[part]) == {0, 1, 2}
    assert Counter(labels[test]) == {0: 10, 1: 6, 2: 1}
    counts = stratified_split(torch.tensor(labels), [10], 1, keep_rest=False)[0]
    assert len(counts) == 10 and set(labels[counts]) == {0, 1, 2}


# ------------------------------------------------------------------------ ImageSet


def test_imageset_subset_pickle_and_errors():
    images = torch.arange(6 * 3 * 2 * 2, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(6, 3, 2, 2)
    s = ImageSet(images, [0, 1, 0, 1, 2, 2])
    assert len(s) == 6 and s.channels == 3 and s.image_size() == (2, 2)
    x, y = s[4]
    assert torch.equal(x, images[4]) and y == 2 and isinstance(y, int)
    sub = s.subset([5, 1])
    assert torch.equal(sub.images, images[[5, 1]]) and sub.labels.tolist() == [2, 1]
    assert torch.equal(pickle.loads(pickle.dumps(s)).images, images)
    with pytest.raises(ValueError):
        ImageSet(images.float(), [0] * 6)
    with pytest.raises(ValueError):
        ImageSet(images, [0] * 5)


# ------------------------------------------------------------------------ mean / std


def test_mean_std_matches_numpy():
    b = load_dataset("digits")
    mean, std = compute_mean_std(b.train)
    a = b.train.images.numpy() / 255.0
    assert mean == pytest.approx((a.mean(),), abs=1e-9) and std == pytest.approx((a.std(),), abs=1e-9)
    rgb = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (40, 3, 5, 7), dtype=np.uint8))
    s = ImageSet(rgb, [0] * 40)
    mean, std = compute_mean_std(s, max_images=9)
    idx = np.unique(np.linspace(0, 39, 9).round().astype(int))
    ref = rgb.numpy()[idx] / 255.0
    assert mean == pytest.approx(tuple(ref.mean(axis=(0, 2, 3))), abs=1e-9)
    assert std == pytest.approx(tuple(ref.std(axis=(0, 2, 3))), abs=1e-9)
    assert len(mean) == 3 and all(isinstance(v, float) for v in mean + std)


# ------------------------------------------------------------------------ augmentation


@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (3, 20, 28)])
def test_augment_presets_keep_shape_and_dtype(preset, shape):
    t = train_transform(preset, shape[1:])
    if preset == "none":
        assert t is None
        return
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    for _ in range(5):
        y = t(x)
        assert y.shape == shape and y.dtype == torch.uint8


def test_unknown_augment_lists_the_presets():
    with pytest.raises(DataError, match="unknown augmentation 'mixup': use one of none, standard, rrc, trivialaugment"):
        train_transform("mixup", (8, 8))


# ------------------------------------------------------------------------ loaders


def numbered(n: int, channels: int = 1) -> ImageSet:
    """Image i is filled with i % 256 and labelled i: batches show exactly which samples they hold."""
    images = (torch.arange(n) % 256).to(torch.uint8).view(n, 1, 1, 1).expand(n, channels, 4, 4).contiguous()
    return ImageSet(images, torch.arange(n))


def epochs(loader, k: int) -> list[list[int]]:
    out = []
    for _ in range(k):
        seen = []
        for x, y in loader:
            assert x.dtype == torch.uint8 and y.dtype == torch.int64 and x.shape[0] == y.shape[0]
            assert torch.equal(x[:, 0, 0, 0], (y % 256).to(torch.uint8))  # images travel with their labels
            seen += y.tolist()
        out.append(seen)
    return out


@pytest.mark.parametrize("augment", ["none", "standard"])
def test_loader_covers_every_sample_once_and_reshuffles(augment):
    data = numbered(103)
    loader = make_loader(data, batch_size=10, shuffle=True, augment=augment, seed=5)
    assert len(loader) == 11
    e1, e2, e3 = epochs(loader, 3)
    for e in (e1, e2, e3):
        assert sorted(e) == list(range(103))
    assert e1 != e2 and e2 != e3 and e1 != list(range(103))
    fresh = make_loader(data, batch_size=10, shuffle=True, augment=augment, seed=5)
    assert epochs(fresh, 2) == [e1, e2]  # deterministic for a seed
    other = make_loader(data, batch_size=10, shuffle=True, augment=augment, seed=6)
    assert epochs(other, 1)[0] != e1


def test_in_memory_loader_without_augmentation_slices_the_tensor():
    data = numbered(25)
    loader = make_loader(data, batch_size=8, shuffle=False)
    assert not isinstance(loader, torch.utils.data.DataLoader)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [8, 8, 8, 1]
    assert torch.equal(torch.cat([y for _, y in batches]), torch.arange(25))
    assert len(make_loader(data, batch_size=8, shuffle=True, drop_last=True)) == 3
    assert [len(y) for _, y in make_loader(data, batch_size=8, shuffle=True, drop_last=True)] == [8, 8, 8]


def test_augmented_batches_are_reproducible_and_keep_storage_size():
    data = numbered(12, channels=3)
    data.images[:, :, :, :2] = 0  # left half dark, so crops and flips show
    a = [x.clone() for x, _ in make_loader(data, batch_size=4, shuffle=True, augment="standard", seed=1)]
    b = [x.clone() for x, _ in make_loader(data, batch_size=4, shuffle=True, augment="standard", seed=1)]
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True)) and a[0].shape == (4, 3, 4, 4)
    state = torch.get_rng_state()
    list(make_loader(data, batch_size=4, shuffle=True, augment="trivialaugment", seed=1))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is left alone


# ------------------------------------------------------------------------ model input


def test_to_model_input_normalises_resizes_and_matches_channels():
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8), dtype=np.uint8))
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    y = to_model_input(x, size=8, mean=mean, std=std, channels=3)
    ref = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert y.dtype == torch.float32 and y.shape == (2, 3, 8, 8) and torch.allclose(y, ref, atol=1e-5)
    big = to_model_input(x, size=16, mean=mean, std=std, channels=3)
    up = F.interpolate(x.float(), size=(16, 16), mode="bilinear", align_corners=False)
    assert big.shape == (2, 3, 16, 16)
    assert torch.allclose(big, (up / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1),
                          atol=1e-5)
    small = to_model_input(x, size=4, mean=(0.0,), std=(1.0,), channels=3)
    down = F.interpolate(x.float(), size=(4, 4), mode="bilinear", align_corners=False, antialias=True) / 255
    assert torch.allclose(small, down, atol=1e-5)
    grey = to_model_input(x, size=8, mean=(0.5,), std=(0.5,), channels=1)
    assert grey.shape == (2, 1, 8, 8) and torch.allclose(grey, (x.float().mean(1, keepdim=True) / 255 - 0.5) / 0.5,
                                                         atol=1e-5)
    assert x.dtype == torch.uint8  # input untouched


def test_one_channel_expands_to_three():
    x = torch.full((3, 1, 5, 5), 51, dtype=torch.uint8)
    y = to_model_input(x, size=7, mean=(0.1,), std=(0.5,), channels=3)
    assert y.shape == (3, 3, 7, 7) and torch.allclose(y, torch.full_like(y, (0.2 - 0.1) / 0.5), atol=1e-5)
    per = to_model_input(x, size=5, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5), channels=3)
    assert per[0, :, 0, 0].tolist() == pytest.approx([0.2, 0.0, -0.2], abs=1e-5)
    f = torch.rand(1, 3, 4, 4)
    copy = f.clone()
    to_model_input(f, size=4, mean=(0.5,), std=(0.5,), channels=3)
    assert torch.equal(f, copy)  # float input is not modified in place


def test_prepare_image_matches_to_model_input():
    a = np.random.default_rng(1).integers(0, 256, (10, 14, 3), dtype=np.uint8)
    img = Image.fromarray(a)
    p = prepare_image(img, size=6, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2), channels=3)
    ref = to_model_input(torch.from_numpy(a).permute(2, 0, 1)[None], size=6, mean=(0.5, 0.4, 0.3),
                         std=(0.2, 0.2, 0.2), channels=3)
    assert p.shape == (1, 3, 6, 6) and torch.allclose(p, ref)
    grey = prepare_image(img.convert("L"), size=8, mean=(0.5,), std=(0.25,), channels=3)
    assert grey.shape == (1, 3, 8, 8) and torch.allclose(grey[:, 0], grey[:, 2])
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert prepare_image(rgba, size=4, mean=(0.0,), std=(1.0,), channels=1).min() == pytest.approx(1.0)


# ------------------------------------------------------------------------ torchvision sources


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_torchvision_source_offline_is_one_clear_sentence(name, tmp_path, monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as e:
        load_dataset(name, cache_dir=cache)
    msg = str(e.value)
    folder = cache / "datasets" / name
    assert msg.startswith(f"could not download {name} into {folder}") and "\n" not in msg
    assert "--data digits" in msg and folder.is_dir()


def write_fake_mnist(root, n_train: int, n_test: int):
    """Files in torchvision's MNIST layout (idx format), so the torchvision path runs offline."""
    import struct

    raw = root / "datasets" / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = labels  # the label is written in the corner
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())


def test_torchvision_source_loads_from_the_cache_without_network(tmp_path, monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    write_fake_mnist(tmp_path, 100, 40)
    b = load_dataset("mnist", cache_dir=tmp_path, val_fraction=0.2, limit_test=20, seed=3)
    assert b.name == "mnist" and b.channels == 1 and len(b.classes) == 10 and b.classes[0].startswith("0")
    assert (len(b.train), len(b.val), len(b.test)) == (80, 20, 20)
    assert b.train.images.shape == (80, 1, 28, 28) and b.train.images.dtype == torch.uint8
    for split in (b.train, b.val, b.test):
        assert torch.equal(split.images[:, 0, 0, 0].long(), split.labels)  # images kept their labels
        assert split.class_counts(10) == [len(split) // 10] * 10
    other = load_dataset("mnist", cache_dir=tmp_path, val_fraction=0.2, seed=4)
    assert not torch.equal(other.val.images, b.val.images)  # validation is carved with the run's seed


def test_cache_dir_defaults_to_cvdemo_cache(monkeypatch, tmp_path):
    from cvdemo.data.builtin import cache_root

    monkeypatch.setenv("CVDEMO_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" and cache_root("/x") == type(tmp_path)("/x")


# ------------------------------------------------------------------------ import hygiene


def test_import_is_cheap_and_never_pulls_sklearn_torchvision_or_streamlit():
    code = ("import sys, cvdemo.data as d; d.load_dataset('digits'); "
            "print(sorted(m for m in ('sklearn', 'torchvision', 'streamlit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_loader_length_matches_batches():
    for n, bs in ((1, 4), (8, 4), (9, 4)):
        loader = make_loader(numbered(n), batch_size=bs, shuffle=True)
        assert len(loader) == math.ceil(n / bs) == len(list(loader))
