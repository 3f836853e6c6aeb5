"""The verdict on a run (cvdemo.health): each verdict from synthetic metric histories, then from real short
runs on the built-in digits (LeNet, SGD at lr 5 and lr 1000)."""

import math

import pytest

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.health import VERDICTS, assess, run_health
from cvdemo.run_list import run_rows


def history(train_losses, val_losses=None, val_top1=None, steps_per_epoch=4, step_losses=None):
    """metrics.jsonl records: per epoch `steps_per_epoch` step lines (at the epoch's training loss, or the
    given `step_losses` in order) and one epoch line."""
    records, step = [], 0
    steps = iter(step_losses or [])
    for epoch, loss in enumerate(train_losses, start=1):
        for k in range(1, steps_per_epoch + 1):
            step += 1
            records.append({"kind": "step", "step": step, "epoch": epoch - 1 + k / steps_per_epoch,
                            "loss": next(steps, loss), "lr": 0.1})
        records.append({"kind": "epoch", "epoch": epoch, "train_loss": loss, "train_top1": 0.5,
                        "val_loss": (val_losses or train_losses)[epoch - 1],
                        "val_top1": (val_top1 or [0.9] * len(train_losses))[epoch - 1], "lr": 0.1})
    return records


def test_a_run_that_learned_is_healthy():
    h = assess(history([1.5, 0.8, 0.4, 0.3], val_top1=[0.7, 0.85, 0.9, 0.93]), classes=10, lr=0.05)
    assert h.verdict == "healthy" and h.severity == "ok" and not h.suggestion
    assert "93.0%" in h.sentence and "chance is 10%" in h.sentence


def test_diverged_from_the_state_or_a_non_finite_loss():
    h = assess(history([2.0]), classes=10, lr=5.0, state="diverged")
    assert h.verdict == "diverged" and h.severity == "error"
    assert "try 0.05 or run the LR finder" in h.suggestion
    blown = [*history([2.0]), {"kind": "step", "step": 5, "epoch": 1.2, "loss": 1.67e4, "diverged": True}]
    h = assess(blown, classes=10, lr=1000.0)
    assert h.verdict == "diverged" and "16,700" in h.sentence and "epoch 2" in h.sentence
    assert assess([{"kind": "step", "epoch": 0.1, "loss": math.nan}], classes=10).verdict == "diverged"


def test_unstable_when_the_loss_ends_far_above_its_start():
    # SGD at lr 5 on LeNet: losses in the hundreds, an untrained network starts at ln(10) = 2.3
    h = assess(history([250.0, 120.0], val_top1=[0.3, 0.32]), classes=10, lr=5.0)
    assert h.verdict == "unstable" and h.severity == "error"
    assert h.suggestion == "the learning rate is probably too high: try 0.05 or run the LR finder"
    assert "2.3" in h.sentence
    # class count unknown (a run still training): the first recorded loss is the start
    assert assess(history([2.0, 30.0, 40.0]), lr=5.0).verdict == "unstable"


def test_unstable_when_the_loss_keeps_swinging():
    swings = [2.0, 1.0, 0.5, 0.4] + [0.3, 3.5, 0.4, 3.6, 0.3, 3.4, 0.5, 3.3]  # rises of ~3 > ln(10) = 2.3
    h = assess(history([1.0, 0.8, 0.9], step_losses=swings, val_top1=[0.5, 0.6, 0.6]), classes=10, lr=0.5)
    assert h.verdict == "unstable" and "jumped up and down" in h.sentence and "0.05" in h.suggestion


def test_did_not_learn_when_accuracy_stays_near_chance():
    h = assess(history([2.30, 2.30, 2.29], val_top1=[0.10, 0.11, 0.12]), classes=10, lr=1e-6)
    assert h.verdict == "did not learn" and h.severity == "warning"
    assert "12.0%" in h.sentence and "10%" in h.sentence and "LR finder" in h.suggestion
    # the same accuracy among 100 classes is far above chance (1%)
    assert assess(history([2.30, 2.30, 2.29], val_top1=[0.10, 0.11, 0.12]), classes=100).verdict == "healthy"
    # two classes: 55% is near chance (50%), 80% is not
    assert assess(history([0.69, 0.68, 0.68], val_top1=[0.5, 0.52, 0.54]), classes=2).verdict == "did not learn"
    assert assess(history([0.69, 0.5, 0.4], val_top1=[0.6, 0.7, 0.8]), classes=2).verdict == "healthy"


def test_overfitting_when_validation_loss_rises_while_training_loss_falls():
    h = assess(history([1.0, 0.5, 0.3, 0.1, 0.05], val_losses=[0.9, 0.6, 0.7, 0.85, 1.0]), classes=10, lr=0.01)
    assert h.verdict == "overfitting" and h.severity == "warning"
    assert "epoch 2" in h.sentence and "epoch 2" in h.suggestion
    # one bad epoch at the end is noise, not overfitting
    assert assess(history([1.0, 0.5, 0.3], val_losses=[0.9, 0.6, 0.8]), classes=10).verdict == "healthy"
    # both rising together is not overfitting either
    assert assess(history([1.0, 0.5, 0.6, 0.7], val_losses=[0.9, 0.6, 0.8, 0.9]), classes=10).verdict == "healthy"


def test_too_early_with_nothing_to_judge():
    assert assess([], classes=10).verdict == "too early"
    assert assess(history([2.0])[:2], classes=10).verdict == "too early"  # two steps, no epoch yet
    assert set(VERDICTS) >= {"diverged", "unstable", "did not learn", "overfitting", "healthy"}


def test_run_health_reads_the_run_folder_and_the_runs_table_shows_it(tmp_path):
    root = runs.default_root()
    run_dir = runs.create_run(root, RunConfig().replace(train={"optimizer": "sgd", "lr": 5.0}))
    for m in history([250.0, 120.0], val_top1=[0.3, 0.3]):
        runs.append_metrics(run_dir, m)
    runs.write_json(run_dir / "summary.json", {"data": {"classes": [str(i) for i in range(10)]}})
    runs.write_status(run_dir, "completed", "test top-1 31.9%")
    assert run_health(run_dir).verdict == "unstable"
    (row,) = run_rows(runs.list_runs(root))
    assert row["health"] == "unstable"
    # a diverged run from before the blow-up point was recorded: summary.json holds it
    old = runs.create_run(root, RunConfig())
    runs.write_json(old / "summary.json", {"diverged": {"epoch": 1, "step": 5, "loss": "16676.0", "lr": 997.0}})
    runs.write_status(old, "diverged", "the loss became 1.67e+04")
    assert run_health(old).verdict == "diverged" and "16,676" in run_health(old).sentence


def real_run(**train):
    from cvdemo.train.job import run_training

    config = RunConfig().replace(data={"limit_train": 400}, train={"optimizer": "sgd", "epochs": 2, **train})
    run_dir = runs.create_run(runs.default_root(), config)
    run_training(config, run_dir)
    return run_dir


def test_a_real_run_at_lr_1000_diverged_and_its_curve_ends_where_it_blew_up():
    run_dir = real_run(lr=1000.0)
    assert runs.read_status(run_dir)["state"] == "diverged"
    h = run_health(run_dir)
    assert h.verdict == "diverged" and "run the LR finder" in h.suggestion
    last = runs.read_metrics(run_dir)[-1]
    assert last["kind"] == "step" and last["diverged"] is True and last["epoch"] > 0


@pytest.mark.slow
def test_a_real_run_at_lr_5_is_not_called_healthy():
    run_dir = real_run(lr=5.0)
    h = run_health(run_dir)
    assert runs.read_status(run_dir)["state"] == "completed"  # it finished: the verdict is what flags it
    assert h.verdict in ("unstable", "did not learn"), h
    assert h.severity == "error" or h.verdict == "did not learn"


def test_the_report_section_of_a_run_says_its_verdict(tmp_path):
    from cvdemo.report.options import ReportOptions
    from cvdemo.report.run_section import RunSection

    run_dir = runs.create_run(runs.default_root(), RunConfig().replace(train={"optimizer": "sgd", "lr": 5.0}))
    for m in history([250.0, 120.0], val_top1=[0.3, 0.3]):
        runs.append_metrics(run_dir, m)
    runs.write_status(run_dir, "completed", "test top-1 31.9%")
    section = RunSection(run_dir, tmp_path, ReportOptions(), "run-1")
    html = section.health()
    assert html.startswith('<p class="health error"><b>Unstable.</b>') and "try 0.05 or run the LR finder" in html
    # a run that blew up before its first epoch still has a curve: its step-level training loss
    assert "no curves" not in section.curves()
