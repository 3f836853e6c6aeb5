"""Background training processes: they survive their launcher, stop cleanly on SIGTERM, and a killed one
reads as interrupted and resumes."""

import json
import os
import signal

import pytest
from helpers import cvdemo, wait_for

from cvdemo import runs
from cvdemo.checkpoint import load_checkpoint
from cvdemo.config import RunConfig

pytestmark = pytest.mark.slow  # every test here launches a background training process and waits on it

# Slow enough per epoch (a wide network on digits at 64 px) that the tests can act mid-run.
SLOW = {"model": {"name": "lenet_custom"}, "data": {"image_size": 64},
        "train": {"epochs": 40, "batch_size": 8}}


def epochs_done(run_dir):
    return sum(1 for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch")


def test_sigterm_cancels_with_a_checkpoint_and_resume_finishes(tmp_path):
    cfg = RunConfig().replace(**SLOW)
    run_dir = runs.launch(cfg, tmp_path)
    wait_for(lambda: epochs_done(run_dir) >= 1)
    assert runs.cancel(run_dir)
    status = wait_for(lambda: (s := runs.read_status(run_dir))["state"] not in ("queued", "running") and s)
    assert status["state"] == "cancelled", status
    last = load_checkpoint(run_dir / "last.pt")
    assert last["epoch"] == epochs_done(run_dir) >= 1
    assert not runs.cancel(run_dir)  # nothing left to stop
    shorter = cfg.replace(train={"epochs": last["epoch"] + 1})
    runs.write_json(run_dir / "config.json", shorter.to_dict())  # finish quickly: one more epoch
    proc = cvdemo("train", "--resume", str(run_dir), "--json")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed" and out["epochs"] == last["epoch"] + 1


def test_kill_9_reads_interrupted_keeps_checkpoints_and_resumes(tmp_path):
    cfg = RunConfig().replace(**SLOW)
    run_dir = runs.launch(cfg, tmp_path)
    # last.pt is written just after the epoch's metrics line: wait for both, or the kill may land between them
    wait_for(lambda: epochs_done(run_dir) >= 1 and (run_dir / "last.pt").exists())
    pid = runs.read_status(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    status = wait_for(lambda: (s := runs.read_status(run_dir))["state"] == "interrupted" and s)
    assert "stopped without finishing" in status["message"]
    before = (run_dir / "last.pt").read_bytes()
    last = load_checkpoint(run_dir / "last.pt")  # intact: written atomically
    assert last["epoch"] >= 1
    runs.write_json(run_dir / "config.json", cfg.replace(train={"epochs": last["epoch"] + 1}).to_dict())
    proc = cvdemo("train", "--resume", str(run_dir), "--json")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed"
    assert (run_dir / "last.pt").read_bytes() != before
    epochs = [m["epoch"] for m in runs.read_metrics(run_dir) if m["kind"] == "epoch"]
    assert epochs == list(range(1, last["epoch"] + 2))


def test_launched_run_outlives_a_failed_start_message(tmp_path):
    cfg = RunConfig().replace(data={"source": str(tmp_path / "missing")})
    run_dir = runs.launch(cfg, tmp_path)
    status = wait_for(lambda: (s := runs.read_status(run_dir))["state"] not in ("queued", "running") and s)
    assert status["state"] == "failed"
    assert "does not exist" in status["message"]
