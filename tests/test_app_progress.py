"""The Train page shows the phase a run is in (feature cache, test) with done / total, a rate and a time left,
read from a synthetic status.json (issue 18, item 1)."""

import os
import time

from helpers import ROOT
from streamlit.testing.v1 import AppTest

from cvdemo import runs
from cvdemo.config import RunConfig


def running_run(**phase) -> None:
    run_dir = runs.create_run(runs.default_root(), RunConfig().replace(train={"epochs": 5}))
    runs.write_status(run_dir, "running", "computing the frozen backbone's features once", pid=os.getpid(),
                      **phase)
    return run_dir


def train_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    return at.switch_page("pages/train.py").run()


def bars(at: AppTest) -> list[str]:
    return [e.proto.text for e in at.get("progress")]


def test_the_train_page_shows_the_feature_cache_phase_with_a_rate_and_a_time_left():
    now = time.time()
    running_run(phase="features", phase_label="computing the frozen backbone's features", done=1234, total=2400,
                unit="images", phase_started=now - 4.0)
    at = train_page()
    assert not at.exception
    [text] = bars(at)
    assert text.startswith("computing the frozen backbone's features: 1,234 / 2,400 images · ")
    assert "images/s" in text and text.endswith("left")
    assert [m.value for m in at.metric if m.label == "time left"] != ["—"]


def test_an_epoch_on_stored_features_says_its_speed_is_the_head_alone():
    run_dir = running_run()
    runs.append_metrics(run_dir, {"kind": "epoch", "epoch": 1, "train_loss": 1.0, "train_top1": 0.5, "lr": 0.1,
                                  "images_per_s": 5000.0, "seconds": 0.1, "val_loss": 1.0, "val_top1": 0.5,
                                  "head_only": True, "time": time.time()})
    at = train_page()
    assert [m.label for m in at.metric if m.value == "5,000"] == ["images / s (head only, on stored features)"]
    assert bars(at) == ["epoch 2 of 5"]
