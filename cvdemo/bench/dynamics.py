"""`cvdemo bench dynamics`: what recording the training dynamics costs (issue 14: the train throughput
must not drop by more than 5% with it on).

The train-throughput benchmark's set-up (2,000 synthetic 32x32 colour images, batch 64, SGD, cvdemo's
Trainer) trained with cvdemo.train.dynamics.Dynamics writing into a run folder, as every run does, and
without it: `ratio` = images/s with recording / images/s without (1.0 = free). The two take turns, the
order alternating from one repeat to the next, so a change in the machine's load falls on both alike,
and each figure is the median of the repeats. Two models: train-throughput's LeNet (tanh: no ReLU, so
no dead-ReLU pass) and the modernised LeNet with ReLU and batch norm (the dead-ReLU pass runs);
`ratio` is the lower of the two.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from cvdemo.bench._timing import sync

MODELS = ("lenet", "lenet_custom")


def bench_dynamics(device: torch.device, models: tuple[str, ...] = MODELS, repeats: int = 5, epochs: int = 2,
                   batch_size: int = 64, images: int = 2000) -> dict[str, Any]:
    """Throughput with and without dynamics recording, per model; `ratio` is the worst model's."""
    from cvdemo.bench.training import write_image_folder
    from cvdemo.config import TrainConfig
    from cvdemo.data import compute_mean_std, load_dataset, make_loader, to_model_input
    from cvdemo.models import create_model, get_spec, group_parameters
    from cvdemo.train import Trainer
    from cvdemo.train.dynamics import DYNAMICS_EVERY, Dynamics
    from cvdemo.train.optim import build_optimizer

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="sgd", lr=0.01, schedule="constant")
    out: dict[str, Any] = {"every": DYNAMICS_EVERY, "repeats": repeats, "epochs": epochs, "batch_size": batch_size}
    with tempfile.TemporaryDirectory(prefix="cvdemo-bench-dynamics-") as tmp:
        root = write_image_folder(Path(tmp) / "data", n=images)
        bundle = load_dataset(str(root), val_fraction=0.01)
        mean, std = compute_mean_std(bundle.train)
        n = len(bundle.train) * epochs

        def seconds(model_name: str, recording: bool, run_dir: Path) -> tuple[float, int]:
            torch.manual_seed(0)
            model = create_model(model_name, 10).to(device)
            # the optimizer's groups named as in a real run, so the recorder sees the model's layer groups
            groups = [{"params": p, "name": g} for g, p in group_parameters(model, get_spec(model_name))]
            optimizer = build_optimizer(groups, cfg)
            loader = make_loader(bundle.train, batch_size=batch_size, shuffle=True)
            prepare = lambda x: to_model_input(x.to(device), size=32, mean=mean, std=std, channels=3)  # noqa: E731
            recorder = Dynamics(run_dir) if recording else None
            trainer = Trainer(model, optimizer, None, loader, None, prepare=prepare, device=device, epochs=epochs,
                              callbacks=[recorder] if recorder else [])
            sync(device.type == "cuda")
            start = time.perf_counter()
            trainer.fit()
            sync(device.type == "cuda")
            return time.perf_counter() - start, len(recorder.records) if recorder else 0

        for model_name in models:
            times: dict[bool, list[float]] = {True: [], False: []}
            records = 0
            run_dir = Path(tmp) / model_name
            run_dir.mkdir()
            seconds(model_name, True, run_dir)  # warm-up, untimed: allocator, kernels, the first file writes
            for i in range(repeats):
                for recording in ((True, False) if i % 2 == 0 else (False, True)):
                    s, made = seconds(model_name, recording, run_dir)
                    times[recording].append(s)
                    records = made or records
            on, off = statistics.median(times[True]), statistics.median(times[False])
            out[model_name] = {"images": n, "records": records, "recording_images_per_s": n / on,
                               "off_images_per_s": n / off, "ratio": off / on}
    out["ratio"] = min(out[m]["ratio"] for m in models)
    return out
