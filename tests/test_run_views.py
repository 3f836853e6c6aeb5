"""What the app shows and does with runs, in the core: cvdemo.run_list, cvdemo.compare's result rows,
and runs.delete_run."""

import time

import pytest

from cvdemo import runs
from cvdemo.compare import flat_config, result_rows
from cvdemo.config import RunConfig
from cvdemo.errors import CvdemoError
from cvdemo.run_list import run_label, run_labels, run_rows, runs_with_weights, short_name


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


def test_runs_shown_together_are_told_apart_by_name_or_by_what_differs(root):
    slow = runs.run_info(make_run(root, train={"lr": 0.0003}))
    fast = runs.run_info(make_run(root, train={"lr": 0.3, "batch_size": 64}))
    named = runs.run_info(make_run(root, train={"lr": 1.0}, name="too high"))
    other = runs.run_info(make_run(root, model={"name": "cifar_resnet"}))
    labels = run_labels([slow, fast, named, other])
    assert labels[slow.id].startswith("lenet on digits · batch_size 16, lr 0.0003 · started ")
    assert labels[fast.id].startswith("lenet on digits · batch_size 64, lr 0.3 · started ")
    assert labels[named.id].startswith("too high · started ") and short_name(named) == "too high"
    assert labels[other.id].startswith("cifar_resnet on digits · started ")  # alone with its model: nothing to add
    assert len(set(labels.values())) == 4


def test_an_uploaded_zip_is_shown_by_the_name_it_was_uploaded_under(root):
    from cvdemo import uploads

    zipped = uploads.save_zip(b"PK\x05\x06" + bytes(18), root, name="C:\\Users\\me\\scenes.zip")
    r = runs.run_info(make_run(root, data={"source": str(zipped)}))
    assert r.data_name == "scenes.zip" and str(root) not in run_label(r)
    assert run_rows([r])[0]["data"] == "scenes.zip"
    assert runs.data_display_name("/srv/data/flowers") == "flowers" and runs.data_display_name("digits") == "digits"


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
