"""Issue 18, item 1 in a real browser: a run in a long phase (the frozen backbone's feature cache) shows
images done / total, a rate and a time left on the Train page, and its speed while training on stored
features is labelled as the head's alone. The run's status is written as a run writes it; the test's own
process stands for the run's, so the page sees a live run. Screenshots under test-artifacts/screenshots/."""

import os
import time

import pytest
from shots import heading, screenshot, settle

from cvdemo import runs
from cvdemo.config import RunConfig

pytestmark = pytest.mark.browser


def test_a_long_phase_shows_done_of_total_a_rate_and_a_time_left(server, page):
    config = RunConfig().replace(model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                                 train={"epochs": 5}, name="frozen lite0")
    run_dir = runs.create_run(server["runs"], config)
    try:
        runs.write_status(run_dir, "running", "computing the frozen backbone's features once", pid=os.getpid(),
                          phase="features", phase_label="computing the frozen backbone's features", done=1234,
                          total=2400, unit="images", phase_started=time.time() - 20.0)
        page.goto(server["url"] + "/train")
        heading(page, "Train")
        bar = page.get_by_text("computing the frozen backbone's features: 1,234 / 2,400 images")
        bar.wait_for(timeout=60_000)
        text = bar.inner_text()
        assert "images/s" in text and text.rstrip().endswith("left"), text
        settle(page)
        screenshot(page, "train-feature-cache-progress", max_height=900)

        runs.append_metrics(run_dir, {"kind": "epoch", "epoch": 1, "train_loss": 1.0, "train_top1": 0.5, "lr": 0.1,
                                      "images_per_s": 5000.0, "seconds": 0.1, "val_loss": 1.0, "val_top1": 0.5,
                                      "head_only": True, "time": time.time()})
        runs.write_status(run_dir, "running", "epoch 2", pid=os.getpid())
        page.get_by_text("images / s (head only, on stored features)").wait_for(timeout=30_000)
        page.get_by_text("epoch 2 of 5").wait_for(timeout=30_000)
        settle(page)
        screenshot(page, "train-head-only-speed", max_height=900)
    finally:
        runs.write_status(run_dir, "cancelled", "stopped by the test")
