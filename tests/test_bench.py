"""`cvdemo bench` explain and embed: what they measure is right (no timings are asserted; speed is the
benchmark's business, these tests check that its figures are figures of the same work)."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from cvdemo import bench


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                                      nn.ReLU())
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_explain_benchmark_times_every_method_against_captum_on_the_same_maps():
    torch.manual_seed(0)
    model = TinyNet().eval().requires_grad_(False)
    x = torch.randn(1, 3, 16, 16)
    results = bench.explain_vs_captum(model, x, layer="features.2", n_steps=6, internal_batch_size=4,
                                      n_samples=4, window=4, stride=2, occlusion_batch=8, repeat=2)
    assert set(results) == {"saliency", "integrated_gradients", "smoothgrad", "occlusion", "guided_backprop",
                            "gradcam", "guided_gradcam"}
    for name, r in results.items():
        assert r["ours_s"] > 0 and r["captum_s"] > 0 and math.isclose(r["ratio"], r["captum_s"] / r["ours_s"])
        if name == "smoothgrad":
            assert r["difference"] is None  # different noise draws: no map to compare
        else:  # a ReLU network, so Captum's guided backpropagation applies too: every map is the same
            assert r["difference"] < 1e-4, (name, r["difference"])


@pytest.mark.slow
def test_integrated_gradients_memory_probe_sees_batching():
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc to reset the peak resident size")
    batched = bench.ig_peak_memory(n_steps=16, internal_batch_size=2, size=96)
    at_once = bench.ig_peak_memory(n_steps=16, internal_batch_size=16, size=96)
    assert batched is not None and at_once is not None
    assert at_once > 2 * batched > 0, (batched, at_once)


@pytest.mark.slow
def test_embed_benchmark_compares_the_chosen_tsne_with_scikit_learn():
    import openTSNE  # noqa: F401  (pinned in requirements.txt: a missing install fails here, not skips)
    x, labels = bench.tsne_points(5000)
    assert x.shape == (5000, 64) and x.dtype.name == "float32" and set(labels.tolist()) == set(range(10))
    r = bench.bench_embed(torch.device("cpu"), n=300)
    assert r["points"] == 300 and r["ours_backend"] == "opentsne"
    assert r["ours_s"] > 0 and r["sklearn_s"] > 0 and math.isclose(r["ratio"], r["sklearn_s"] / r["ours_s"])
    # Both pictures keep the classes apart about as well (on 300 shifted digits even the raw pixels'
    # 5-NN accuracy is only ~0.7): the faster backend does not buy speed with a worse picture.
    assert r["sklearn_knn5"] > 0.5 and r["ours_knn5"] > r["sklearn_knn5"] - 0.05


def test_data_benchmark_feeds_both_loaders_the_same_files_and_gets_the_same_pixels(tmp_path):
    """The data benchmark races cvdemo's folder loader against torchvision's ImageFolder: same files, same
    count per pass, and at the files' own size the same normalised tensor for the same file."""
    import torchvision
    from torchvision import transforms

    from cvdemo.bench.data import _ours, _torchvision, write_folder
    from cvdemo.data import load_dataset, to_model_input

    root = write_folder(tmp_path, "PNG", 32, 40)
    bundle = load_dataset(str(root), val_fraction=0.01, test_fraction=0.01, image_size=32)
    ours_count = _ours(root, 32, 1)
    assert ours_count == len(bundle.train) and _torchvision(root, 32, 1, 0) == 40
    name = bundle.train.names[0]
    dataset = torchvision.datasets.ImageFolder(str(root / "train"), transform=transforms.Compose([
        transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.25,) * 3)]))
    theirs = next(x for (path, _), (x, _) in zip(dataset.samples, dataset) if path.endswith(name))
    ours = to_model_input(bundle.train.images[:1], size=32, mean=(0.5,) * 3, std=(0.25,) * 3, channels=3)[0]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_app_benchmark_reports_each_steps_median_and_uploads_a_new_photo_each_time(tmp_path):
    """`cvdemo bench app` (which needs a browser, so only its pieces here): every step's figure is the median
    of its repeats (a step done once is its one figure), `ratio` is the bare app's page switch over ours,
    and the Explain repeats upload four different photos, so none is answered from the page's cache."""
    import hashlib

    from PIL import Image

    from cvdemo.bench.app import _photos, summary

    out = summary({"baseline_page_switch": [0.2, 0.1, 0.3], "page_switch": [0.5, 0.4, 0.45],
                   "explain_gradcam": [2.0, 3.0, 1.0], "explain_first": [7.123], "tsne_500": [1.5, 1.25, 9.0]})
    assert out == {"baseline_page_switch": 0.2, "page_switch": 0.45, "explain_gradcam": 2.0, "explain_first": 7.12,
                   "tsne_500": 1.5, "ratio": 0.2 / 0.45}
    photos = _photos(tmp_path)
    assert len(photos) == 4
    pixels = [Image.open(p).convert("RGB") for p in photos]
    assert all(min(p.size) >= 224 for p in pixels)  # real photos, at least the network's input size
    assert len({hashlib.sha256(p.tobytes()).hexdigest() for p in pixels}) == 4


def test_dynamics_benchmark_trains_the_same_model_with_and_without_recording():
    """`cvdemo bench dynamics`: per model, the same training with the recorder on (it records) and off, and
    `ratio` is the worst model's images/s with recording over images/s without."""
    r = bench.BENCHMARKS["dynamics"](torch.device("cpu"), models=("lenet", "lenet_custom"), repeats=1, images=200)
    assert "dynamics" in bench.IN_ALL
    assert r["repeats"] == 1 and r["every"] >= 1
    for model in ("lenet", "lenet_custom"):
        m = r[model]
        assert m["images"] == 198 * r["epochs"] and m["records"] >= 1   # 99% of the 200 images train (1% validation)
        assert m["recording_images_per_s"] > 0 and m["off_images_per_s"] > 0
        assert math.isclose(m["ratio"], m["recording_images_per_s"] / m["off_images_per_s"])
    assert r["ratio"] == min(r["lenet"]["ratio"], r["lenet_custom"]["ratio"])


@pytest.mark.slow
def test_frozen_folder_benchmark_runs_cvdemo_and_the_plain_script_over_the_same_images():
    """`cvdemo bench frozen-folder`: `cvdemo train --freeze backbone` and the plain script each pass every image
    of the same folder through the pretrained backbone (cvdemo: training and validation images in its feature
    pass, the test images after training), and `ratio` is the script's wall time over cvdemo's."""
    r = bench.BENCHMARKS["frozen-folder"](torch.device("cpu"), n=60, side=32, size=32, epochs=2)
    assert "frozen-folder" in bench.IN_ALL
    assert r["images"] == 60 == r["baseline_feature_images"] == r["feature_images"] + r["test_images"]
    assert r["test_images"] > 0 and r["feature_images_per_s"] > 0 and r["baseline_feature_images_per_s"] > 0
    assert 0 <= r["test_top1"] <= 1 and 0 <= r["baseline_test_top1"] <= 1
    assert math.isclose(r["ratio"], r["baseline_seconds"] / r["seconds"])


@pytest.mark.slow
def test_feature_store_benchmark_times_a_computing_run_against_runs_that_read_undecoded():
    """`cvdemo bench feature-store`: the later runs add no entry, end as the first did when their settings
    match, and the feature pass read back is bit-identical to computing it; `ratio` is first over median arm."""
    r = bench.BENCHMARKS["feature-store"](torch.device("cpu"), n=60, size=32, epochs=2, arms=(3e-3, 1e-2, 3e-4))
    assert "feature-store" in bench.IN_ALL
    assert min(r["images"].values()) > 0
    assert r["store_entries"] == 3 and r["new_entries_after_first"] == 0
    assert r["same_result_as_first"] and r["features_identical"]
    assert len(r["arm_seconds"]) == 3 and math.isclose(r["ratio"], r["first_seconds"] / r["median_arm_seconds"])
