"""The app's spare training process (cvdemo.spare): a run handed to it trains exactly as in a fresh process,
at normal priority after waiting at idle priority, can be cancelled, and a spare that no longer matches the
app's environment is never used."""

import json
import os
import subprocess
import sys

import pytest
from helpers import wait_for

from cvdemo import runs, spare
from cvdemo.config import RunConfig

pytestmark = pytest.mark.slow  # each test starts a spare process that imports torch

QUICK = RunConfig().replace(model={"name": "lenet_custom"}, data={"limit_train": 300, "limit_test": 100},
                            train={"epochs": 2, "batch_size": 32})


@pytest.fixture(autouse=True)
def no_spare_left():
    spare.discard()
    yield
    spare.discard()


def finished(run_dir):
    return wait_for(lambda: (s := runs.read_status(run_dir))["state"] not in ("queued", "running") and s)


def policy(pid):
    try:
        return os.sched_getscheduler(pid)
    except ProcessLookupError:
        return None


def test_a_run_handed_to_the_spare_trains_as_a_fresh_process_does(tmp_path, monkeypatch):
    spare.keep_ready()
    pid = spare.waiting()
    assert pid is not None
    wait_for(lambda: policy(pid) == os.SCHED_IDLE, timeout=30)  # importing on otherwise idle cores
    warm = runs.launch(QUICK, tmp_path / "warm")
    assert json.loads((warm / "launch.json").read_text())["pid"] == pid
    assert spare.waiting() is None  # used once
    wait_for(lambda: policy(pid) in (os.SCHED_OTHER, None))  # trains at normal priority
    assert finished(warm)["state"] == "completed"
    assert "completed: test top-1" in (warm / "log.txt").read_text()  # its output went to the run's log

    monkeypatch.setenv("CVDEMO_SPARE", "0")
    spare.keep_ready()
    assert spare.waiting() is None
    cold = runs.launch(QUICK, tmp_path / "cold")
    assert finished(cold)["state"] == "completed"
    same = [json.loads((r / "summary.json").read_text()) for r in (warm, cold)]
    assert same[0]["test"] == same[1]["test"]
    curves = [[m["loss"] for m in runs.read_metrics(r) if m["kind"] == "step"] for r in (warm, cold)]
    assert curves[0] == curves[1] and len(curves[0]) > 5


def test_a_run_in_the_spare_is_cancelled_like_any_other(tmp_path):
    slow = RunConfig().replace(model={"name": "lenet_custom"}, data={"image_size": 64},
                               train={"epochs": 40, "batch_size": 8})
    spare.keep_ready()
    pid = spare.waiting()
    run_dir = runs.launch(slow, tmp_path)  # at once: the spare is still importing, at idle priority
    # normal priority as soon as it has its run, imports or not: beside busy neighbours it would otherwise wait
    wait_for(lambda: policy(pid) in (os.SCHED_OTHER, None), timeout=5)
    wait_for(lambda: any(m.get("kind") == "step" for m in runs.read_metrics(run_dir)))
    assert runs.cancel(run_dir)
    assert finished(run_dir)["state"] == "cancelled"


def test_a_spare_from_another_environment_is_not_used(tmp_path, monkeypatch):
    spare.keep_ready()
    proc_pid = spare.waiting()
    monkeypatch.setenv("CVDEMO_SOMETHING_NEW", "1")  # the spare would not see it
    assert spare.hand_over(["--version"], tmp_path / "log.txt") is None
    wait_for(lambda: policy(proc_pid) is None or not runs.process_alive(proc_pid), timeout=10)
    run_dir = runs.launch(QUICK.replace(train={"epochs": 1}), tmp_path)
    assert json.loads((run_dir / "launch.json").read_text())["pid"] != proc_pid
    assert finished(run_dir)["state"] == "completed"


def test_a_waiting_spare_ends_when_its_input_closes():
    proc = subprocess.Popen([sys.executable, "-m", "cvdemo", "worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.stdin.close()  # the app ended
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
