"""What the Data and Model pages show, computed in the core: cvdemo.data.overview, cvdemo.train.summary
and cvdemo.augment_preview.preset_previews (the pages' cached wrappers only call these)."""

import numpy as np
import pytest
import torch

from cvdemo.augment_preview import preset_previews
from cvdemo.config import RunConfig
from cvdemo.data import AUGMENT_PRESETS, DataBundle, ImageSet, compute_mean_std
from cvdemo.data.overview import class_samples, data_overview
from cvdemo.models import count_parameters, create_model, get_spec
from cvdemo.train.groups import trains_text
from cvdemo.train.summary import model_summary


def bundle(channels: int = 3) -> DataBundle:
    """3 classes; class 2 has no training images. Each image is filled with its own index."""
    def split(labels: list[int], start: int) -> ImageSet:
        n = len(labels)
        images = torch.arange(start, start + n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, channels, 6, 5)
        return ImageSet(images.contiguous(), labels)

    return DataBundle("toy", ["cat", "dog", "eel"], split([0, 1, 0, 1, 0], 0), split([0, 2], 100),
                      split([1, 2, 2], 200), channels, skipped=["bad.png"])


# -- data overview -------------------------------------------------------------------------------

def test_overview_counts_every_split_and_class():
    b = bundle()
    o = data_overview(b)
    assert o["name"] == "toy" and o["classes"] == ["cat", "dog", "eel"] and o["channels"] == 3
    assert o["sizes"] == {"train": 5, "val": 2, "test": 3}
    assert o["counts"] == {"train": [3, 2, 0], "val": [1, 0, 1], "test": [0, 1, 2]}
    assert (o["mean"], o["std"]) == compute_mean_std(b.train)
    assert o["skipped"] == ["bad.png"] and o["image_size"] == (6, 5)


def test_samples_are_the_first_training_images_of_each_class_in_order():
    samples = class_samples(bundle(), per_class=2)
    assert list(samples) == ["cat", "dog"]                      # eel has no training images
    assert samples["cat"].dtype == np.uint8 and samples["cat"].shape == (2, 3, 6, 5)
    assert [int(s[0, 0, 0]) for s in samples["cat"]] == [0, 2]  # training images 0 and 2 are cats
    assert [int(s[0, 0, 0]) for s in samples["dog"]] == [1, 3]
    assert list(class_samples(bundle(), max_classes=1)) == ["cat"]


# -- model summary -------------------------------------------------------------------------------

def test_summary_counts_the_parameters_of_the_model_training_would_build():
    s = model_summary(RunConfig(), num_classes=10, in_channels=1)
    total, _ = count_parameters(create_model("lenet", 10, in_channels=1))
    spec = get_spec("lenet")
    assert s["total"] == total == s["trainable"] == sum(r["parameters"] for r in s["groups"])
    assert [r["group"] for r in s["groups"]] == [g for g, _ in spec.groups]
    assert s["groups"][-1]["modules"] == spec.head
    assert {r["trains"] for r in s["groups"]} == {"from the start"}
    assert all(r["learning rate"] > 0 for r in s["groups"])


def test_summary_of_a_frozen_backbone_trains_only_the_head():
    config = RunConfig().replace(model={"name": "resnet18", "pretrained": True, "freeze": "backbone"})
    s = model_summary(config, num_classes=5, in_channels=1)  # resnet18 takes RGB: built for 3 channels
    head = s["groups"][-1]
    assert head["trains"] == "from the start" and s["trainable"] == head["parameters"] == 512 * 5 + 5
    assert {r["trains"] for r in s["groups"][:-1]} == {"frozen"}
    total, _ = count_parameters(create_model("resnet18", 5))
    assert s["total"] == total


def test_trains_text():
    assert [trains_text(e) for e in (1, None, 4)] == ["from the start", "frozen", "from epoch 4"]


# -- augmentation previews -----------------------------------------------------------------------

def test_previews_show_the_same_images_under_every_preset_and_leave_torchs_generator_alone():
    b = bundle()
    config = RunConfig().replace(train={"mixup": 0.4})
    state = torch.random.get_rng_state()
    out = preset_previews(config, 4, b)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert list(out) == ["original", *AUGMENT_PRESETS, "yours"]
    for images in out.values():
        assert images.dtype == np.uint8 and images.shape == (4, 3, 6, 5)
    assert np.array_equal(out["none"], out["original"])          # no augmentation, no mixing
    again = preset_previews(config, 4, b)
    assert all(np.array_equal(out[k], again[k]) for k in out)    # seeded with the run's seed


@pytest.mark.parametrize("n", [1, 99])
def test_previews_clamp_the_count_to_the_training_set(n):
    out = preset_previews(RunConfig(), n, bundle())
    assert len(out["original"]) == min(n, 5)
