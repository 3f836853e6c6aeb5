"""What the app shows and does with runs, in the core: cvdemo.run_list, cvdemo.compare's result rows,
and runs.delete_run."""

import time

import pytest

from cvdemo import runs
from cvdemo.compare import flat_config, result_rows
from cvdemo.config import RunConfig
from cvdemo.errors import CvdemoError
from cvdemo.run_list import run_label, run_rows, runs_with_weights, short_name


@pytest.fixture
def root():
    return runs.default_root()  # a temporary folder (conftest)


def make_run(root, state="completed", checkpoints=(), **changes):
    run_dir = runs.create_run(root, RunConfig().replace(**changes))
    runs.write_status(run_dir, state, "done")
    for name in checkpoints:
        (run_dir / name).write_bytes(b"weights")
    return run_dir


def test_only_runs_with_a_checkpoint_can_be_analysed(root):
    best = make_run(root, checkpoints=["best.pt"])
    last = make_run(root, "cancelled", checkpoints=["last.pt"])
    make_run(root, "failed")
    assert {r.path for r in runs_with_weights()} == {best, last}
    assert runs_with_weights(root / "nowhere") == []


def test_labels_name_model_data_start_time_and_id(root):
    r = runs.run_info(make_run(root, data={"source": "/home/me/photos/flowers"}))
    started = time.strftime("%H:%M:%S", time.localtime(r.created))
    assert run_label(r) == f"lenet on flowers · started {started} · {r.id[-4:]}"
    assert short_name(r) == f"lenet · {r.id[-4:]}"


def test_run_rows_have_one_row_per_run(root):
    found = runs.list_runs(root)
    assert run_rows(found) == []
    make_run(root)
    (row,) = run_rows(runs.list_runs(root))
    assert row["model"] == "lenet" and row["state"] == "completed" and row["epochs"] == f"0/{RunConfig().train.epochs}"
    assert set(row) == {"run", "state", "health", "model", "data", "epochs", "val top-1", "test top-1", "message"}
    assert row["health"] == "too early"  # nothing recorded


def test_result_rows_name_the_columns_and_add_the_settings(root):
    run_dir = make_run(root, train={"lr": 0.02})
    (row,) = result_rows(runs.list_runs(root))
    assert row["run"] == short_name(runs.run_info(run_dir)) and row["state"] == "completed"
    assert row["lr"] == 0.02 and "test top-1" in row and "parameters" in row and "top1" not in row
    assert flat_config(run_dir)["train.lr"] == 0.02
    assert flat_config(root / "missing") == {}


def test_delete_removes_a_finished_run_only(root, tmp_path):
    done = make_run(root)
    running = make_run(root, "running")
    runs.write_status(running, "running", "epoch 1", pid=__import__("os").getpid())
    with pytest.raises(CvdemoError, match="still running"):
        runs.delete_run(running)
    with pytest.raises(CvdemoError, match="not a run folder"):
        runs.delete_run(tmp_path)
    runs.delete_run(done)
    assert not done.exists() and running.exists()
