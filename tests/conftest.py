import pytest


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Runs and caches go to a temporary folder: tests never touch ./runs or ~/.cache."""
    monkeypatch.setenv("CVDEMO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CVDEMO_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One LeNet trained on digits, shared by the tests that only read a finished run."""
    from cvdemo import runs
    from cvdemo.config import RunConfig
    from cvdemo.train.job import run_training

    root = tmp_path_factory.mktemp("shared-runs")
    cfg = RunConfig().replace(train={"epochs": 6})
    run_dir = runs.create_run(root, cfg)
    summary = run_training(cfg, run_dir)
    assert summary["status"] == "completed", summary
    return run_dir


@pytest.fixture(scope="session")
def cat_png(tmp_path_factory):
    """scikit-image's photo of a cat (Chelsea), written as a PNG file."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("images") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.fixture(scope="session")
def odd_names_run(tmp_path_factory):
    """A LeNet trained for two epochs on three digit classes stored as image folders whose names are HTML."""
    import numpy as np
    from helpers import ODD_CLASSES, ODD_RUN_NAME
    from PIL import Image
    from sklearn.datasets import load_digits

    from cvdemo import runs
    from cvdemo.config import RunConfig
    from cvdemo.train.job import run_training

    digits = load_digits()
    folder = tmp_path_factory.mktemp("odd-data") / "images"
    for label, name in enumerate(ODD_CLASSES):
        (folder / name).mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == label][:40]):
            Image.fromarray((image * 255 / 16).astype(np.uint8), "L").save(folder / name / f"{i}.png")
    root = tmp_path_factory.mktemp("odd-runs")
    cfg = RunConfig().replace(data={"source": str(folder)}, train={"epochs": 2}, name=ODD_RUN_NAME)
    run_dir = runs.create_run(root, cfg)
    summary = run_training(cfg, run_dir)
    assert summary["status"] == "completed", summary
    return run_dir
