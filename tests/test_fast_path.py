"""The device-resident data path (the GPU fast path), exercised on the CPU where it is selected explicitly:
the same samples as the streaming loader, a real reflect pad-crop + flip, and a run trained through it."""

import pytest
import torch
import torch.nn.functional as F

from cvdemo.data import ImageSet, make_loader
from cvdemo.data.loader import SampleLoader, TensorBatches, pad_crop_flip, resident_device
from cvdemo.errors import DataError


def numbered(n=40, side=8):
    """n constant grey images whose value is their index (so a crop or flip leaves it readable)."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, side, side).contiguous()
    return ImageSet(images, torch.arange(n) % 4)


def sample_ids(loader):
    return [int(x[0, 0, 0]) for xb, _ in loader for x in xb]


@pytest.mark.parametrize("augment", ["none", "standard"])
def test_resident_loader_visits_the_streaming_loaders_samples_in_the_same_order(augment):
    data = numbered()
    streaming = make_loader(data, batch_size=6, shuffle=True, augment=augment, seed=5)
    resident = make_loader(data, batch_size=6, shuffle=True, augment=augment, seed=5, resident="on", device="cpu")
    assert isinstance(resident, TensorBatches) and resident.augment == augment
    assert len(resident) == len(streaming) == 7
    epochs = []
    for epoch in range(2):
        streaming.set_epoch(epoch)
        resident.set_epoch(epoch)
        ids = sample_ids(resident)
        assert ids == sample_ids(streaming)
        assert sorted(ids) == list(range(40))  # every sample once per epoch
        epochs.append(ids)
    assert epochs[0] != epochs[1]  # reshuffled
    for xb, yb in resident:
        assert xb.dtype == torch.uint8 and xb.shape[1:] == (1, 8, 8)
        assert (yb == xb[:, 0, 0, 0].long() % 4).all()  # labels travel with their images


def reference_crops(image, pad):
    """Every (top, left, flipped) output of torchvision's RandomCrop(padding=pad, reflect) + horizontal flip."""
    h, w = image.shape[-2:]
    padded = F.pad(image[None].float(), (pad,) * 4, mode="reflect")[0]
    out = {}
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            crop = padded[:, top:top + h, left:left + w]
            out[(top, left, False)] = crop
            out[(top, left, True)] = crop.flip(-1)
    return out


def test_pad_crop_flip_is_a_reflect_padded_crop_then_a_flip():
    image = torch.arange(3 * 16 * 16).view(3, 16, 16).remainder(251).to(torch.uint8)  # every pixel told apart
    refs = reference_crops(image, 2)
    dy, dx = torch.tensor([-2, 0, 2, 1, -1]), torch.tensor([2, 0, -2, -1, 1])
    flip = torch.tensor([False, True, False, True, True])
    out = pad_crop_flip(image.expand(5, 3, 16, 16), dy, dx, flip)
    for b in range(5):
        expected = refs[(int(dy[b]) + 2, int(dx[b]) + 2, bool(flip[b]))]
        assert torch.equal(out[b].float(), expected), b


def test_resident_standard_augmentation_draws_real_crops_and_flips():
    image = torch.arange(16 * 16).view(1, 16, 16).to(torch.uint8)  # a known image: 256 distinct values
    data = ImageSet(image.expand(64, 1, 16, 16).contiguous(), torch.zeros(64, dtype=torch.long))
    refs = reference_crops(image, 16 // 8)
    loader = make_loader(data, batch_size=16, shuffle=True, augment="standard", seed=0, resident="on")
    seen = set()
    for xb, _ in loader:
        for x in xb:
            matches = [k for k, ref in refs.items() if torch.equal(x.float(), ref)]
            assert len(matches) == 1  # each output is exactly one pad-crop(+flip) of the image
            seen.add(matches[0])
    assert len({(t, left) for t, left, _ in seen}) >= 10  # many offsets ...
    assert {f for *_, f in seen} == {True, False}  # ... and both flips


def test_resident_modes_and_their_limits():
    data = numbered()
    cpu = torch.device("cpu")
    assert resident_device(data, "standard", "off", cpu) is None
    assert resident_device(data, "standard", "auto", cpu) is None  # auto: only a CUDA GPU
    assert resident_device(data, "standard", "on", None) == cpu
    assert isinstance(make_loader(data, batch_size=4, shuffle=True, augment="standard", resident="auto",
                                  device=cpu), SampleLoader)
    with pytest.raises(DataError, match="rrc augmentation runs per image"):
        make_loader(data, batch_size=4, shuffle=True, augment="rrc", resident="on")
    assert resident_device(data, "rrc", "auto", cpu) is None  # auto falls back to streaming
    with pytest.raises(DataError, match="resident must be one of"):
        resident_device(data, "none", "always", cpu)


@pytest.mark.slow
def test_a_run_trains_through_the_resident_path_on_the_cpu(tmp_path, monkeypatch):
    from cvdemo import runs
    from cvdemo.config import RunConfig
    from cvdemo.data import loader
    from cvdemo.train.job import run_training

    made = []
    original = loader.resident_batches
    monkeypatch.setattr(loader, "resident_batches", lambda *a, **k: made.append(original(*a, **k)) or made[-1])
    cfg = RunConfig().replace(data={"device_resident": "on", "augment": "standard"},
                              train={"epochs": 3, "device": "cpu", "batch_size": 32})
    summary = run_training(cfg, runs.create_run(tmp_path, cfg))
    assert summary["status"] == "completed" and summary["test"]["top1"] > 0.5
    assert len(made) == 2 and made[0].augment == "standard" and made[0].epoch == 3  # the training batches
    assert made[1].augment == "none" and not made[1].shuffle  # validation stays there too (issue 19)


def test_a_lazy_folder_is_decoded_once_into_the_resident_tensor(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from cvdemo.data import folder, load_dataset

    monkeypatch.setattr(folder, "MEMORY_BUDGET", 1000)  # nothing fits in memory at load time: lazy splits
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (20, 12, 3), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    train = load_dataset(tmp_path, image_size=16, val_fraction=0.25).train
    assert train.images is None
    streaming = make_loader(train, batch_size=4, shuffle=True, seed=2)
    resident = make_loader(train, batch_size=4, shuffle=True, seed=2, resident="on", device="cpu")
    assert isinstance(resident, TensorBatches) and resident.images.shape == (len(train), 3, 16, 16)
    for (xs, ys), (xr, yr) in zip(streaming, resident, strict=True):
        assert torch.equal(xs, xr) and torch.equal(ys, yr)
