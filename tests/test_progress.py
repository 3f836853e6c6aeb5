"""cvdemo.progress: how far a run is and how long it has left, from its metric records."""

import pytest

from cvdemo.progress import duration, progress
from cvdemo.runs import RunInfo


def run(state="running", epochs=4) -> RunInfo:
    return RunInfo(path=None, id="20250101-000000-lenet-digits-abcd", state=state, message="", model="lenet",
                   data="digits", epochs_done=0, epochs=epochs, best_val_top1=None, test_top1=None, created=0.0)


def test_a_run_without_records_has_not_started():
    assert progress(run(), []) == {"fraction": 0.0, "done": 0, "total": 4, "eta": None, "images_per_s": None,
                                   "head_only": False}


def test_steps_move_the_fraction_within_an_epoch_and_give_the_time_left():
    metrics = [{"kind": "step", "epoch": 0.5, "time": 100.0}, {"kind": "step", "epoch": 1.0, "time": 110.0},
               {"kind": "epoch", "epoch": 1, "time": 110.0, "images_per_s": 900.0},
               {"kind": "step", "epoch": 1.5, "time": 120.0}]
    p = progress(run(), metrics, now=125.0)
    assert p["fraction"] == pytest.approx(1.5 / 4) and p["done"] == 1 and p["images_per_s"] == 900.0
    # 20 s an epoch, 2.5 epochs to go, 5 s since the last record
    assert p["eta"] == pytest.approx(20.0 * 2.5 - 5.0)


def test_a_finished_run_has_no_time_left_and_never_passes_one():
    metrics = [{"kind": "epoch", "epoch": e, "time": 10.0 * e} for e in (1, 2, 3, 4, 5)]
    p = progress(run("completed"), metrics)
    assert p["eta"] is None and p["fraction"] == 1.0 and p["done"] == 5


def test_the_time_left_is_never_negative():
    metrics = [{"kind": "epoch", "epoch": 1, "time": 0.0}, {"kind": "epoch", "epoch": 2, "time": 10.0}]
    assert progress(run(), metrics, now=1e6)["eta"] == 0.0


def test_a_run_planned_for_zero_epochs_does_not_divide_by_zero():
    assert progress(run(epochs=0), [])["total"] == 1


@pytest.mark.parametrize("seconds, text", [(None, "—"), (0, "0:00"), (59.6, "1:00"), (61, "1:01"),
                                           (3599, "59:59"), (3600, "1h00"), (7260, "2h01")])
def test_durations_read_as_minutes_or_hours(seconds, text):
    assert duration(seconds) == text
