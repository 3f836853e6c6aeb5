"""Progress of the long phases inside a run (feature cache, validation, test, LR finder, evaluation):
reported at a bounded rate, written to status.json, read back as text with a rate and a time left, shown by
the CLI on stderr (issue 18, item 1)."""

import json
import os

import pytest

from cvdemo import progress as prog
from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.progress import HEAD_ONLY, Phase, listening, live_progress, phase, phase_progress, status_listener
from cvdemo.runs import RunInfo


def info(state="running", epochs=4) -> RunInfo:
    return RunInfo(path=None, id="20250101-000000-lenet-digits-abcd", state=state, message="", model="lenet",
                   data="digits", epochs_done=0, epochs=epochs, best_val_top1=None, test_top1=None, created=0.0)


FEATURES = {"state": "running", "message": "computing the frozen backbone's features once", "updated": 110.0,
            "phase": "features", "phase_label": "computing the frozen backbone's features", "done": 1234,
            "total": 2400, "unit": "images", "phase_started": 106.0}


# -- text, rate and time left from a synthetic status --------------------------------------------------------

def test_a_phase_in_the_status_reads_as_done_of_total_a_rate_and_a_time_left():
    p = phase_progress(FEATURES, now=110.0)
    assert p["done"] == 1234 and p["total"] == 2400 and p["fraction"] == pytest.approx(1234 / 2400)
    assert p["rate"] == pytest.approx(1234 / 4) and p["eta"] == pytest.approx((2400 - 1234) / (1234 / 4))
    assert p["text"] == "computing the frozen backbone's features: 1,234 / 2,400 images · 308 images/s · 0:04 left"


def test_the_time_left_counts_down_between_reports_and_never_goes_negative():
    assert phase_progress(FEATURES, now=112.0)["eta"] == pytest.approx(1166 / 308.5 - 2.0)
    assert phase_progress(FEATURES, now=1e6)["eta"] == 0.0


def test_a_phase_that_has_just_started_says_so_and_no_phase_reads_none():
    p = phase_progress({**FEATURES, "done": 0})
    assert p["rate"] is None and p["eta"] is None and p["text"].endswith("0 / 2,400 images · starting")
    assert phase_progress({"state": "running", "message": "epoch 2 of 5"}) is None


def test_the_train_page_view_takes_the_phase_bar_and_its_time_left_before_the_first_epoch():
    view = live_progress(info(), [], FEATURES, now=110.0)
    assert view["bar_fraction"] == pytest.approx(1234 / 2400) and view["bar_text"].startswith("computing")
    assert view["time_left"] == pytest.approx(1166 / 308.5)
    # testing after the last epoch: the run's own time left would be 0:00 with a full bar
    epochs = [{"kind": "epoch", "epoch": e, "time": 10.0 * e, "images_per_s": 5000.0, "head_only": True}
              for e in (1, 2, 3, 4)]
    test = {**FEATURES, "phase": "test", "phase_label": "testing the best checkpoint", "done": 100,
            "total": 400}
    view = live_progress(info(), epochs, test, now=110.0)
    assert view["bar_fraction"] == 0.25 and view["time_left"] == pytest.approx(12.0)
    assert view["speed_label"] == f"images / s ({HEAD_ONLY})"
    # between phases: the epochs' bar
    plain = [{**e, "head_only": False} for e in epochs[:1]]
    view = live_progress(info(), plain, {"state": "running"}, now=110.0)
    assert view["phase"] is None and view["bar_text"] == "epoch 2 of 4" and view["speed_label"] == "images / s"


# -- reporting: bounded rate, silence for short phases ------------------------------------------------------

def test_a_phase_reports_at_start_at_most_every_interval_and_at_the_end(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(prog.time, "monotonic", lambda: clock[0])
    seen = []
    with listening(seen.append):
        with phase("test", "testing", 1000) as meter:
            for _ in range(100):  # 100 batches over 5 s: reports at most 4 a second
                clock[0] += 0.05
                meter.add(10)
    assert seen[0]["done"] == 0 and seen[-1]["final"] and seen[-1]["done"] == 1000
    assert 15 <= len(seen) <= 5 / 0.25 + 2
    assert [s["done"] for s in seen] == sorted(s["done"] for s in seen)


def test_a_quiet_phase_shorter_than_its_threshold_reports_nothing_and_nobody_listening_costs_nothing():
    seen = []
    with listening(seen.append):
        with phase("validation", "validating", 100, after=2.0) as meter:
            meter.add(100)
    assert seen == []
    lonely = Phase("test", "testing", 10)
    lonely.add(10)
    lonely.finish()
    assert not lonely.reported


def test_the_status_listener_keeps_the_epoch_and_adds_the_phase(tmp_path):
    run_dir = runs.create_run(tmp_path, RunConfig())
    runs.write_status(run_dir, "running", "epoch 2 of 5", epoch=1, epochs=5)
    with listening(status_listener(run_dir)):
        with phase("validation", "validating epoch 2", 300) as meter:
            meter.add(300)
    status = runs.read_status(run_dir)
    assert status["message"] == "epoch 2 of 5" and status["epoch"] == 1 and status["epochs"] == 5
    assert (status["phase"], status["done"], status["total"]) == ("validation", 300, 300)
    assert phase_progress(status)["text"].startswith("validating epoch 2: 300 / 300 images")


# -- real runs ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_frozen_backbone_run_on_digits_writes_feature_cache_progress_to_its_status(tmp_path, monkeypatch):
    from cvdemo.train.job import run_training

    written = []
    real_write = runs.write_status

    def spy(run_dir, state, message="", **extra):
        written.append({"state": state, "message": message, **extra})
        return real_write(run_dir, state, message, **extra)

    monkeypatch.setattr(runs, "write_status", spy)
    cfg = RunConfig().replace(data={"limit_train": 40, "limit_test": 20, "image_size": 32},
                              model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                              train={"epochs": 1, "batch_size": 16})
    run_dir = runs.create_run(tmp_path, cfg)
    summary = run_training(cfg, run_dir)
    assert summary["status"] == "completed" and summary["cached_features"]
    features = [w for w in written if w.get("phase") == "features"]
    total = summary["data"]["train"] + summary["data"]["val"]
    assert features and {w["total"] for w in features} == {total}
    assert features[0]["done"] == 0 and features[-1]["done"] == total
    assert any(w.get("phase") == "test" and w["done"] == w["total"] == summary["test"]["n"] for w in written)
    epoch = next(m for m in runs.read_metrics(run_dir) if m["kind"] == "epoch")
    assert epoch["head_only"] is True  # its images/s is the head's alone, and says so


def test_the_cli_shows_each_phase_on_stderr_and_keeps_stdout_json(tmp_path, capsys):
    from cvdemo.cli import main

    code = main(["train", "--epochs", "1", "--limit-train", "200", "--limit-test", "100",
                 "--out", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "completed" and result["test"]["n"] > 0
    assert f"testing the best checkpoint: {result['test']['n']:,} / {result['test']['n']:,} images in" in err
    assert "testing" not in out


def test_the_lr_finder_reports_its_batches():
    from cvdemo.train.job import find_lr

    seen = []
    with listening(seen.append):
        find_lr(RunConfig().replace(data={"limit_train": 200}), steps=12)
    assert seen[0]["phase"] == "lr_find" and seen[0]["unit"] == "batches" and seen[0]["total"] == 12
    assert seen[-1]["final"] and seen[-1]["done"] == 12


def test_a_torchrun_rank_that_writes_no_folder_reports_to_nobody():
    seen = []
    with listening(seen.append), listening(None, replace=True):
        with phase("test", "testing", 10) as meter:
            meter.add(10)
    assert seen == []
    assert os.environ.get("CVDEMO_RUNS")  # (the isolated store is in place for the tests above)
