"""`cvdemo bench feature-store`: a frozen-backbone run that computes its features against the runs after it
on the same data, with other head settings, that read them from the feature store.

The first run (store empty) and each later run with another head learning rate are timed whole, as
`cvdemo train` runs them: data loading, model building, the features (computed, or read back), the head's
epochs, the test pass and the run folder's files. The later runs find the folder's files unchanged and decode
none of them (`feature_cache.quick_bundle`). A small warm-up run first (20 images, its own store) keeps the
process's one-time costs out of both sides. Apart from the runs, the feature pass alone is timed both ways on
one model and the validation split (computed vs read back), and the two results compared bit for bit.

The folder holds 3,000 photos, as `bench frozen-folder`'s: a data set worth a sweep. On 400 the first run
takes 3 s and what any run costs whatever its data (building the model, the head's epochs, checkpoints)
decides the ratio.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def bench_feature_store(device: torch.device, n: int = 3000, size: int = 128, epochs: int = 3,
                        arms: tuple[float, ...] = (3e-3, 1e-2, 3e-4)) -> dict[str, Any]:
    """A folder of `n` synthetic PNG photos (`size` px), efficientnet_lite0 pretrained and frozen, `epochs`
    epochs: the first run's wall time over each later arm's (another head lr); ratio = first / median arm."""
    from cvdemo import runs
    from cvdemo.bench.training import write_image_folder
    from cvdemo.config import RunConfig
    from cvdemo.device import amp_dtype
    from cvdemo.models import get_module
    from cvdemo.train.feature_cache import head_inputs
    from cvdemo.train.feature_store import FeatureStore, store_root
    from cvdemo.train.job import run_training
    from cvdemo.train.setup import build_setup

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_image_folder(Path(tmp) / "photos", n=n, classes=10, size=size)
        cfg = RunConfig().replace(data={"source": str(folder), "image_size": size},
                                  model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                                  train={"epochs": epochs, "batch_size": 32, "lr": 1e-3, "device": device.type})

        cpu: dict[str, float] = {}

        def timed_run(root: Path, c: RunConfig) -> tuple[float, dict[str, Any]]:
            run_dir = runs.create_run(root, c)
            start, clock = time.perf_counter(), time.process_time()
            summary = run_training(c, run_dir)
            cpu[run_dir.name] = time.process_time() - clock  # all threads: what the run used, load or not
            return time.perf_counter() - start, summary

        timed_run(Path(tmp) / "warm-up", cfg.replace(data={"limit_train": 20, "limit_test": 10}))
        root = Path(tmp) / "runs"
        first, first_summary = timed_run(root, cfg)
        first_cpu = list(cpu.values())[-1]
        stored = FeatureStore(store_root(root)).entries()
        later = [timed_run(root, cfg.replace(train={"lr": lr})) for lr in arms]
        arm_cpu = sorted(list(cpu.values())[-len(arms):])
        again, again_summary = timed_run(root, cfg)  # the first run's settings, features read back
        entries = FeatureStore(store_root(root)).entries()
        setup = build_setup(cfg)
        head, amp = get_module(setup.model, setup.spec.head), amp_dtype(cfg.train.precision, setup.device)
        start = time.perf_counter()
        computed = head_inputs(setup, setup.bundle.val, head, amp, batch_size=64)
        compute_seconds = time.perf_counter() - start
        start = time.perf_counter()
        read = head_inputs(setup, setup.bundle.val, head, amp, batch_size=64, runs_root=root)
        read_seconds = time.perf_counter() - start
    seconds = sorted(s for s, _ in later)
    median = seconds[len(seconds) // 2]
    data = first_summary["data"]
    return {"images": {"train": data["train"], "val": data["val"], "test": data["test"]}, "size": size,
            "epochs": epochs, "first_seconds": first, "arm_seconds": [s for s, _ in later],
            "arm_lrs": list(arms), "median_arm_seconds": median,
            "store_entries": len(entries), "store_bytes": sum(e["bytes"] for e in stored),
            "new_entries_after_first": len(entries) - len(stored),
            "same_result_as_first": again_summary["test"] == first_summary["test"],
            "first_test_top1": first_summary["test"]["top1"], "repeat_seconds": again,
            "features_compute_seconds": compute_seconds, "features_read_seconds": read_seconds,
            "features_ratio": compute_seconds / read_seconds, "features_identical": torch.equal(computed, read),
            # CPU seconds (this process, all threads) move less than wall time on a shared machine
            "first_cpu_seconds": first_cpu, "median_arm_cpu_seconds": arm_cpu[len(arm_cpu) // 2],
            "cpu_ratio": first_cpu / arm_cpu[len(arm_cpu) // 2],
            "ratio": first / median}
