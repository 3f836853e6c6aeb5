"""The feature store: a frozen backbone's features kept between runs, identical to recomputing them, and
recomputed whenever anything they depend on changes."""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from nets import SmallCNN
from PIL import Image

from cvdemo.cli import main
from cvdemo.data.archive import DirReader
from cvdemo.data.imageset import ImageSet, LazySource
from cvdemo.train.feature_cache import head_inputs
from cvdemo.train.feature_store import FeatureStore, images_digest, store_root
from cvdemo.train.setup import Setup


def small_setup(*, size: int = 16, name: str = "small-cnn", seed: int = 0) -> Setup:
    torch.manual_seed(seed)
    model = SmallCNN(classes=4).eval()
    return Setup(bundle=None, model=model, spec=SimpleNamespace(name=name, head="fc"), image_size=size,
                 in_channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), device=torch.device("cpu"),
                 params_total=0, params_trainable=0, groups=[])


def pictures(n: int = 24, side: int = 12, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g),
                    torch.arange(n) % 4)


class Counter:
    """How many batches went through the backbone (a forward hook on its convolutions)."""

    def __init__(self, setup: Setup):
        self.calls = 0
        setup.model.features.register_forward_hook(lambda *_: self._add())

    def _add(self) -> None:
        self.calls += 1


def features(setup: Setup, images: ImageSet, root=None) -> torch.Tensor:
    return head_inputs(setup, images, setup.model.fc, None, batch_size=8, runs_root=root)


def test_stored_features_are_bit_identical_to_computing_them_again(tmp_path):
    setup, images = small_setup(), pictures()
    fresh = features(setup, images)
    counter = Counter(setup)
    first = features(setup, images, tmp_path)       # computed and stored
    assert counter.calls == 3 and len(FeatureStore(store_root(tmp_path)).files()) == 1
    second = features(setup, images, tmp_path)      # read back: the backbone does not run
    assert counter.calls == 3
    assert second.dtype == torch.float32 and second.shape == (24, 16)
    assert torch.equal(first, fresh) and torch.equal(second, fresh)


def test_the_head_weights_and_labels_are_not_part_of_the_key(tmp_path):
    setup, images = small_setup(), pictures()
    features(setup, images, tmp_path)
    counter = Counter(setup)
    with torch.no_grad():
        setup.model.fc.weight.add_(1.0)  # a head trained by an earlier run: its input is unchanged
    relabelled = ImageSet(images.images, torch.arange(24) % 2)
    assert torch.equal(features(setup, relabelled, tmp_path), features(setup, images))
    assert counter.calls == 3  # only the plain recomputation above ran the backbone


def changed_pixel(setup: Setup, images: ImageSet) -> tuple[Setup, ImageSet]:
    pixels = images.images.clone()
    pixels[5, 1, 3, 3] ^= 1
    return setup, ImageSet(pixels, images.labels)


def reordered(setup: Setup, images: ImageSet) -> tuple[Setup, ImageSet]:
    return setup, images.subset(list(range(1, 24)) + [0])


def other_size(setup: Setup, images: ImageSet) -> tuple[Setup, ImageSet]:
    return small_setup(size=20), images


def other_model(setup: Setup, images: ImageSet) -> tuple[Setup, ImageSet]:
    return small_setup(name="another-cnn"), images


def other_weights(setup: Setup, images: ImageSet) -> tuple[Setup, ImageSet]:
    with torch.no_grad():
        setup.model.features[0].weight[0, 0, 0, 0] += 1e-3
    return setup, images


def other_normalisation(setup: Setup, images: ImageSet) -> tuple[Setup, ImageSet]:
    setup.mean = (0.4, 0.5, 0.5)
    return setup, images


@pytest.mark.parametrize("change", [changed_pixel, reordered, other_size, other_model, other_weights,
                                    other_normalisation])
def test_any_change_to_what_the_features_depend_on_is_a_miss(tmp_path, change):
    setup, images = small_setup(), pictures()
    stale = features(setup, images, tmp_path)
    setup, images = change(setup, images)
    counter = Counter(setup)
    got = features(setup, images, tmp_path)
    assert counter.calls == 3  # recomputed
    assert torch.equal(got, features(setup, images))  # and equal to a fresh computation
    assert len(FeatureStore(store_root(tmp_path)).files()) == 2
    if change is not other_model:  # the name alone does not change the arithmetic
        assert not torch.equal(got, stale)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_key", "flipped_value"])
def test_a_corrupt_or_mismatched_file_is_recomputed_not_trusted(tmp_path, damage):
    setup, images = small_setup(), pictures()
    good = features(setup, images, tmp_path)
    store = FeatureStore(store_root(tmp_path))
    path, = store.files()
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file")
    elif damage == "other_key":  # another entry's file under this name: its key says so
        other = features(setup, pictures(seed=1), tmp_path)
        assert not torch.equal(other, good)
        (p for p in store.files() if p != path).__next__().replace(path)
    else:  # the features changed after writing: the stored digest no longer matches
        entry = torch.load(path, weights_only=True)
        entry["features"][0, 0] += 1.0
        torch.save(entry, path)
    counter = Counter(setup)
    again = features(setup, images, tmp_path)
    assert counter.calls == 3 and torch.equal(again, good)
    assert store.get(path.stem, len(images)) is not None  # rewritten whole


def test_the_store_keeps_to_its_cap_removing_the_least_recently_used(tmp_path):
    store = FeatureStore(tmp_path / "store", cap=3 * 40 * 16 * 4 + 3000)  # room for two entries and a half
    for i, key in enumerate(("a", "b")):
        assert store.put(key, torch.full((40, 16), float(i)), {"model": "m"})
    old = time.time() - 100
    os.utime(store.path("a"), (old, old))
    os.utime(store.path("b"), (old + 1, old + 1))
    assert store.get("a", 40) is not None  # "a" used now: "b" is the least recently used
    assert store.put("c", torch.full((40, 16), 2.0), {"model": "m"})
    assert sorted(p.stem for p in store.files()) == ["a", "c"]
    assert not store.put("huge", torch.zeros(1000, 1000), {})  # larger than the whole cap: not kept
    assert store.get("a", 40) is not None and store.get("a", 41) is None  # a row count that differs: a miss


def test_switched_off_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CVDEMO_FEATURE_STORE", "0")
    setup, images = small_setup(), pictures()
    assert torch.equal(features(setup, images, tmp_path), features(setup, images))
    assert not store_root(tmp_path).exists()


def test_a_lazy_split_is_keyed_by_its_files_bytes(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    reader = DirReader(tmp_path)

    def lazy(size: int = 16) -> ImageSet:
        return ImageSet(None, [0, 1, 0, 1], channels=3,
                        source=LazySource(reader, [reader.member(f"{i}.png") for i in range(4)], size))

    before = images_digest(lazy())
    assert images_digest(lazy()) == before
    assert images_digest(lazy(size=20)) != before  # decoded to another size
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / "2.png")
    assert images_digest(lazy()) != before


def test_cli_lists_and_clears_the_store(tmp_path, capsys):
    setup = small_setup()
    features(setup, pictures(), tmp_path)
    features(setup, pictures(seed=1), tmp_path)
    assert main(["features", "list", "--root", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(listed["entries"]) == 2 and {e["model"] for e in listed["entries"]} == {"small-cnn"}
    assert listed["entries"][0]["images"] == 24 and listed["entries"][0]["dim"] == 16
    assert main(["features", "clear", "--root", str(tmp_path)]) == 0
    assert "removed 2 feature files" in capsys.readouterr().out
    assert FeatureStore(store_root(tmp_path)).files() == []
    assert main(["features", "list", "--root", str(tmp_path)]) == 0
    assert "0 entries" in capsys.readouterr().out


@pytest.mark.slow
def test_a_second_frozen_run_reuses_the_features_and_ends_the_same(tmp_path):
    """efficientnet_lite0, pretrained and frozen: the run with the store full matches the run that filled it
    epoch for epoch, a run with another head learning rate reads the same entries, and the test figures of the
    head on stored test features are those of the whole network on the test images."""
    from cvdemo import runs
    from cvdemo.config import RunConfig
    from cvdemo.train.job import run_training, test_best
    from cvdemo.train.setup import build_setup

    cfg = RunConfig().replace(data={"limit_train": 120, "limit_test": 40, "image_size": 32},
                              model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                              train={"epochs": 2, "batch_size": 32})
    store = FeatureStore(store_root(tmp_path))

    made = []

    def run(c: RunConfig) -> tuple[dict, list]:
        run_dir = runs.create_run(tmp_path, c)
        made.append(run_dir)
        summary = run_training(c, run_dir)
        assert summary["status"] == "completed" and summary["cached_features"]
        epochs = [{k: v for k, v in m.items() if k not in ("seconds", "time", "images_per_s")}
                  for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch"]
        return summary, epochs

    empty, empty_epochs = run(cfg)
    stored = {p.stem: p.stat().st_mtime_ns for p in store.files()}
    features = [m for m in runs.read_metrics(made[0]) if m.get("kind") == "features"]
    data = empty["data"]
    assert len(features) == 1 and features[0]["images"] == data["train"] + data["val"] and features[0]["seconds"] > 0
    assert len(stored) == 3  # train, validation and test
    whole = test_best(build_setup(cfg), made[0], batch_size=64)  # best.pt through the whole network
    assert set(whole) == set(empty["test"]) and whole["n"] == empty["test"]["n"] == 40
    assert whole == pytest.approx(empty["test"], abs=1e-5)
    full, full_epochs = run(cfg)
    assert full["test"] == empty["test"] and full_epochs == empty_epochs
    other, _ = run(cfg.replace(train={"lr": cfg.train.lr * 3}))
    assert {p.stem: p.stat().st_mtime_ns for p in store.files()}.keys() == stored.keys()  # no new entry
    assert other["test"] != empty["test"]  # a different head learnt: the lr reached it


def photo_folder(root, classes=3, per_class=14, side=40):
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            base = np.zeros((side, side, 3), np.uint8)
            base[..., c] = 150  # each class its own colour, with noise
            noise = rng.integers(0, 100, (side, side, 3), dtype=np.uint8)
            Image.fromarray(base + noise).save(root / f"class{c}" / f"{i}.png")
    return root


@pytest.mark.slow
def test_a_frozen_run_on_an_unchanged_folder_opens_no_image_and_ends_the_same(tmp_path, monkeypatch):
    """After a frozen run on a folder, the next one on the same files reads no image (its features and the
    pixel digests come from the store) and ends exactly as a decoding run does; a changed file, a skipped file
    or features missing from the store each make the run decode again."""
    from cvdemo import runs
    from cvdemo.config import RunConfig
    from cvdemo.train.feature_cache import quick_bundle
    from cvdemo.train.job import run_training

    folder = photo_folder(tmp_path / "photos")
    root = tmp_path / "runs"
    cfg = RunConfig().replace(data={"source": str(folder), "image_size": 32},
                              model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                              train={"epochs": 2, "batch_size": 8})

    def run(c):
        run_dir = runs.create_run(root, c)
        summary = run_training(c, run_dir)
        assert summary["status"] == "completed" and summary["cached_features"], summary["message"]
        epochs = [{k: v for k, v in m.items() if k not in ("seconds", "time", "images_per_s")}
                  for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch"]
        return summary, epochs

    assert quick_bundle(cfg, root) is None  # nothing noted yet
    first, first_epochs = run(cfg)
    assert quick_bundle(cfg, root) is not None

    def no_reading(self, member):
        raise AssertionError(f"{member} was read")

    with monkeypatch.context() as m:
        m.setattr(DirReader, "read", no_reading)
        again, again_epochs = run(cfg)
        other, _ = run(cfg.replace(train={"lr": cfg.train.lr * 3}))
    assert again["test"] == first["test"] and again_epochs == first_epochs and again["data"] == first["data"]
    assert other["test"] != first["test"]

    Image.fromarray(np.full((40, 40, 3), 7, np.uint8)).save(folder / "class1" / "3.png")  # one file changes
    assert quick_bundle(cfg, root) is None
    changed, _ = run(cfg)
    assert changed["data"] == first["data"]
    store = FeatureStore(store_root(root))
    for p in store.files():
        p.unlink()  # the note stays, the features go: the run decodes after all
    assert quick_bundle(cfg, root) is not None
    refilled, _ = run(cfg)
    assert refilled["test"] == changed["test"]

    (folder / "class2" / "broken.png").write_bytes(b"not a picture")
    skipping = cfg.replace(data={"skip_bad": True})
    assert run(skipping)[0]["data"]["skipped"] == 1
    assert quick_bundle(skipping, root) is None  # a split with a skipped file is never taken undecoded


def test_the_store_is_cleared_with_its_data_notes(tmp_path):
    store = FeatureStore(store_root(tmp_path))
    store.put("k" * 32, torch.ones(2, 3), {"model": "m"})
    store.remember_data("f" * 40, {"train": "a", "val": "b", "test": "c", "channels": 3})
    assert store.recall_data("f" * 40)["train"] == "a"
    assert store.clear()[0] == 1  # one feature file; the note goes with it
    assert store.recall_data("f" * 40) is None and list(store.root.iterdir()) == []
