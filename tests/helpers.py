"""Helpers shared by test modules."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cvdemo(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """Run the real command line in a fresh process; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "cvdemo", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env={**os.environ, **(env or {})}, timeout=timeout)


# Class and run names a report must print as text, never as markup (the `odd_names_run` fixture).
ODD_CLASSES = ("<script>alert(1)<", 'a&b "quoted"', "<img src=x onerror=alert(2)>")
ODD_RUN_NAME = '<script>alert("run")</script> & co'


def recorded_run(root: Path, *, epochs_planned: int, losses: list[float], state: str = "cancelled",
                 name: str | None = None, steps_per_epoch: int = 4) -> Path:
    """A run folder written by hand: `len(losses)` finished epochs of a `epochs_planned`-epoch run whose
    training loss per epoch is `losses` (validation a little above, accuracy falling as the loss grows),
    each epoch with `steps_per_epoch` step records, ended in `state`. Seconds to make, no training."""
    from cvdemo import runs
    from cvdemo.config import RunConfig

    config = RunConfig().replace(train={"epochs": epochs_planned, "optimizer": "sgd", "lr": 5.0}, name=name)
    run_dir = runs.create_run(root, config)
    step, now = 0, 1.8e9
    for epoch, loss in enumerate(losses, start=1):
        for k in range(1, steps_per_epoch + 1):
            step += 1
            runs.append_metrics(run_dir, {"kind": "step", "step": step, "epoch": epoch - 1 + k / steps_per_epoch,
                                          "loss": loss * (1.3 if k % 2 else 0.8), "lr": 5.0, "time": now + step})
        top1 = max(0.1, min(0.99, 1 - loss / 3))
        runs.append_metrics(run_dir, {"kind": "epoch", "epoch": epoch, "train_loss": loss, "train_top1": top1,
                                      "lr": 5.0, "images_per_s": 5000.0, "seconds": 0.2, "val_loss": loss * 1.1,
                                      "val_top1": top1, "time": now + step})
    runs.write_status(run_dir, state, "stopped on request" if state == "cancelled" else "")
    return run_dir


def wait_for(predicate, timeout: float = 120, every: float = 0.2):
    """predicate()'s first truthy value, asked every `every` seconds; AssertionError after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")
