"""Benchmarks of training, data loading and inference against the textbook loops (`baselines/`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from cvdemo.bench._timing import timed
from cvdemo.bench.baselines import textbook_loop

TEXTBOOK_DIGITS = Path(__file__).parent / "baselines" / "textbook_digits.py"
FROZEN_FOLDER = Path(__file__).parent / "baselines" / "frozen_folder.py"


def timed_process(args: list[str], device: torch.device) -> tuple[float, str]:
    """Run `python ARGS` in a fresh process (device in $CVDEMO_BENCH_DEVICE): its wall time, start-up included,
    and the last line of its stdout; a failure raises with the last line of its stderr."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, "CVDEMO_BENCH_DEVICE": device.type})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])}: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
    return seconds, proc.stdout.strip().splitlines()[-1]


def write_image_folder(root: Path, n: int = 2000, classes: int = 10, size: int = 32, seed: int = 0) -> Path:
    """A train/<class>/*.png folder of synthetic colour images (a per-class colour and noise), with a tiny
    test/ split."""
    import numpy as np
    from PIL import Image

    from cvdemo.bench.data import write_folder

    write_folder(root, "PNG", size, n, classes=classes, seed=seed)
    for c in range(classes):  # a tiny test split so the folder has the two-split layout
        folder = root / "test" / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size, 3), c * 20, np.uint8)).save(folder / "0.png")
    return root


def bench_train_throughput(device: torch.device, model_name: str = "lenet", batch_size: int = 64,
                           epochs: int = 2) -> dict[str, Any]:
    """cvdemo's trainer vs ImageFolder + DataLoader + the textbook loop: same model, data, batch, device."""
    from cvdemo.config import TrainConfig
    from cvdemo.data import compute_mean_std, load_dataset, make_loader, to_model_input
    from cvdemo.models import create_model
    from cvdemo.train import Trainer
    from cvdemo.train.optim import build_optimizer

    with tempfile.TemporaryDirectory() as tmp:
        root = write_image_folder(Path(tmp))
        bundle = load_dataset(str(root), val_fraction=0.01)
        mean, std = compute_mean_std(bundle.train)
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="sgd", lr=0.01, schedule="constant")

        def ours() -> None:
            torch.manual_seed(0)
            model = create_model(model_name, 10).to(device)
            loader = make_loader(bundle.train, batch_size=batch_size, shuffle=True)
            prepare = lambda x: to_model_input(x.to(device), size=32, mean=mean, std=std, channels=3)  # noqa: E731
            Trainer(model, build_optimizer(model.parameters(), cfg), None, loader, None, prepare=prepare,
                    device=device, epochs=epochs).fit()

        dataset = textbook_loop.image_folder(root / "train", mean, std)

        def baseline() -> None:
            torch.manual_seed(0)
            model = create_model(model_name, 10).to(device)
            textbook_loop.train(model, dataset, device, epochs=epochs, batch_size=batch_size, lr=0.01)

        n = len(bundle.train) * epochs
        t_ours, t_base = timed(ours, device=device), timed(baseline, device=device)
    return {"model": model_name, "images": n, "ours_images_per_s": n / t_ours,
            "baseline_images_per_s": len(dataset) * epochs / t_base, "ratio": (n / t_ours) / (len(dataset) * epochs / t_base)}


def bench_inference(device: torch.device, model_name: str = "efficientnet_lite0", n: int = 256,
                    size: int = 224) -> dict[str, Any]:
    """cvdemo's evaluate() vs a plain torch.inference_mode() loop on the same model and images."""
    from cvdemo.data import to_model_input
    from cvdemo.models import create_model
    from cvdemo.train import evaluate

    torch.manual_seed(0)
    model = create_model(model_name, 10).to(device).eval()
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,))
    batches = [(images[i:i + 64], labels[i:i + 64]) for i in range(0, n, 64)]
    prepare = lambda x: to_model_input(x.to(device), size=size, mean=(0.5,) * 3, std=(0.5,) * 3, channels=3)  # noqa: E731

    def ours() -> None:
        evaluate(model, batches, prepare, device)

    def baseline() -> None:
        textbook_loop.inference(model, batches, device)

    if device.type != "cuda":
        ours()  # warm-up (allocator, kernels); on CUDA `timed` warms both up itself
    t_ours, t_base = timed(ours, 2, device=device), timed(baseline, 2, device=device)
    return {"model": model_name, "images": n, "ours_images_per_s": n / t_ours, "baseline_images_per_s": n / t_base,
            "ratio": t_base / t_ours}


def bench_classroom(device: torch.device, seeds: tuple[int, ...] = tuple(range(10)),
                    recipe: str = "lenet-digits") -> dict[str, Any]:
    """`cvdemo train --recipe lenet-digits --seed S` for every seed, each a fresh process (start-up counted, as
    a class waits for it): min / median / max test top-1 and the median wall time, vs the textbook loop
    (26 epochs of Adam 1e-3, batch 64, 32x32: `baselines/textbook_digits.py`) in a fresh process too."""
    top1s, seconds = [], []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            took, line = timed_process(["-m", "cvdemo", "train", "--recipe", recipe, "--seed", str(seed), "--out", tmp,
                                        "--device", device.type, "--json"], device)
        seconds.append(took)
        top1s.append(json.loads(line)["test"]["top1"])
    baseline, base_line = timed_process([str(TEXTBOOK_DIGITS)], device)
    base_top1 = float(base_line)
    median_seconds = sorted(seconds)[len(seconds) // 2]
    ranked = sorted(top1s)
    return {"recipe": recipe, "seeds": list(seeds), "test_top1": top1s, "seconds": seconds,
            "min_top1": ranked[0], "median_top1": ranked[len(ranked) // 2], "max_top1": ranked[-1],
            "median_seconds": median_seconds, "max_seconds": max(seconds),
            "baseline_seconds": baseline, "baseline_test_top1": base_top1, "ratio": baseline / median_seconds}


def bench_frozen_features(device: torch.device, n: int = 400, epochs: int = 30, size: int = 96) -> dict[str, Any]:
    """A frozen pretrained EfficientNet-Lite0 with a trainable head (report 001's set-up, which trained the
    head for 100 epochs; 30 here keep the benchmark to a couple of minutes): backbone features computed once
    and cached vs recomputed every epoch; both accuracies are reported. With E epochs the ratio cannot
    exceed about E, since the cached run still makes one pass through the backbone."""
    from cvdemo import runs
    from cvdemo.config import RunConfig
    from cvdemo.train.job import run_training

    cfg = RunConfig().replace(data={"limit_train": n, "limit_test": 200, "image_size": size},
                              model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                              train={"epochs": epochs, "batch_size": 32, "device": device.type})
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, cache in (("cached", True), ("recomputed", False)):
            c = cfg.replace(train={"cache_features": cache})
            run_dir = runs.create_run(tmp, c)
            start = time.perf_counter()
            summary = run_training(c, run_dir)
            later = [m["seconds"] for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch" and m["epoch"] > 1]
            out[label] = {"seconds": time.perf_counter() - start, "test_top1": summary["test"]["top1"],
                          "later_epoch": sorted(later)[len(later) // 2]}
    return {"images": n, "epochs": epochs, "size": size, "cached_seconds": out["cached"]["seconds"],
            "recomputed_seconds": out["recomputed"]["seconds"], "cached_test_top1": out["cached"]["test_top1"],
            "recomputed_test_top1": out["recomputed"]["test_top1"],
            # what one more epoch costs once the features are cached (median of epochs 2..E)
            "cached_epoch_seconds": out["cached"]["later_epoch"],
            "recomputed_epoch_seconds": out["recomputed"]["later_epoch"],
            "epoch_ratio": out["recomputed"]["later_epoch"] / out["cached"]["later_epoch"],
            "ratio": out["recomputed"]["seconds"] / out["cached"]["seconds"]}


def bench_frozen_folder(device: torch.device, n: int = 3000, side: int = 64, size: int = 128,
                        epochs: int = 5) -> dict[str, Any]:
    """`cvdemo train --freeze backbone` (efficientnet_lite0, pretrained, `size` px) on a folder of `n` PNGs of
    `side` px, against the plain script a user would write (`baselines/frozen_folder.py`: ImageFolder +
    DataLoader with 2 workers + the backbone in inference_mode + a linear head on the stored features). Both
    run in a fresh process, start-up included, with an empty feature store; ratio = script / cvdemo wall time.
    Both report the feature pass's images/s (cvdemo's over its training and validation images, from the run's
    "features" record; its test images pass through the backbone after training)."""
    from cvdemo import runs
    from cvdemo.bench.data import write_folder

    with tempfile.TemporaryDirectory(prefix="cvdemo-bench-frozen-") as tmp:
        folder = write_folder(Path(tmp) / "photos", "PNG", side, n)
        ours, line = timed_process(["-m", "cvdemo", "train", "--data", str(folder), "--model", "efficientnet_lite0",
                                    "--pretrained", "--freeze", "backbone", "--image-size", str(size),
                                    "--epochs", str(epochs), "--out", str(Path(tmp) / "runs"),
                                    "--device", device.type, "--json"], device)
        summary = json.loads(line)
        run = runs.list_runs(Path(tmp) / "runs")[0]
        features = next(m for m in runs.read_metrics(run.path) if m.get("kind") == "features")
        baseline, base_line = timed_process([str(FROZEN_FOLDER), str(folder / "train"), str(size), str(epochs)],
                                            device)
        plain = json.loads(base_line)
    return {"images": n, "side": side, "size": size, "epochs": epochs, "seconds": ours,
            "test_top1": summary["test"]["top1"], "feature_images": features["images"],
            "test_images": summary["test"]["n"], "feature_images_per_s": features["images"] / features["seconds"],
            "baseline_seconds": baseline, "baseline_test_top1": plain["test_top1"],
            "baseline_feature_images": plain["feature_images"],
            "baseline_feature_images_per_s": plain["feature_images"] / plain["feature_seconds"],
            "ratio": baseline / ours}
