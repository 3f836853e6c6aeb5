"""Faults while a run trains: the process killed with SIGKILL mid-epoch, the run folder deleted or made
read-only under it, the disk filling up in the middle of writing a checkpoint. Each ends in a sentence (or,
for a killed process, in the status `interrupted`), and the last finished epoch is never lost.

SIGTERM (the app's Cancel button) -> `cancelled` with a checkpoint, then resume, is tested in
tests/test_jobs.py::test_sigterm_cancels_with_a_checkpoint_and_resume_finishes (not repeated here).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT
from hostile import assert_sentence

from cvdemo import runs
from cvdemo.checkpoint import load_checkpoint
from cvdemo.config import RunConfig
from cvdemo.errors import CvdemoError
from cvdemo.train.job import run_training

# ~50 batches an epoch: long enough to land a kill inside one, short enough for the suite.
KILLABLE = {"data": {"limit_train": 400, "limit_test": 50}, "train": {"epochs": 2, "batch_size": 8}}
# 4 batches an epoch: enough to fail in the middle of epoch 2 and resume.
SMALL = {"data": {"limit_train": 64, "limit_test": 50}, "train": {"epochs": 2, "batch_size": 16}}


def epoch_lines(run_dir: Path) -> list[int]:
    return [m["epoch"] for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch"]


@pytest.mark.slow
def test_kill_9_mid_epoch_reads_interrupted_keeps_last_checkpoint_and_resumes(runs_root):
    run_dir = runs.create_run(runs_root, RunConfig().replace(**KILLABLE))
    proc = subprocess.Popen([sys.executable, "-m", "cvdemo", "train", "--run-dir", str(run_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:  # a step of epoch 2 is on disk: kill now
            if any(m["kind"] == "step" and m["epoch"] > 1 for m in runs.read_metrics(run_dir)):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = runs.read_status(run_dir)
    assert status["state"] == "interrupted", status
    assert_sentence(status["message"], "stopped without finishing", "resume it")
    last = load_checkpoint(run_dir / "last.pt")  # intact and loadable: written atomically
    done = epoch_lines(run_dir)
    assert last["epoch"] == 1 and len(done) in (1, 2)  # 2 only if killed between a metrics line and last.pt
    partial = [m for m in runs.read_metrics(run_dir) if m["kind"] == "step" and m["epoch"] > last["epoch"]]
    assert partial, "the kill did not land inside an epoch"
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]  # no half-written file left

    resumed = subprocess.run([sys.executable, "-m", "cvdemo", "train", "--resume", str(run_dir), "--json"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert runs.read_status(run_dir)["state"] == "completed"
    assert epoch_lines(run_dir) == [1, 2]
    steps = [m["step"] for m in runs.read_metrics(run_dir) if m["kind"] == "step"]
    assert steps == sorted(set(steps)), "the killed epoch's step lines were not dropped on resume"
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 2


class AtBatch:
    """Trainer callback: run `action(trainer)` once, at batch `batch` of epoch `epoch` (0-based)."""

    def __init__(self, epoch: int, batch: int, action):
        self.epoch, self.batch, self.action, self.done = epoch, batch, action, False

    def on_batch_end(self, trainer, info):
        if not self.done and info.epoch == self.epoch and info.batch == self.batch:
            self.done = True
            self.action(trainer)


def test_run_folder_deleted_while_training_is_a_sentence_not_a_crash(runs_root):
    config = RunConfig().replace(**SMALL)
    run_dir = runs.create_run(runs_root, config)
    with pytest.raises(CvdemoError) as err:
        run_training(config, run_dir, callbacks=[AtBatch(0, 1, lambda t: shutil.rmtree(run_dir))])
    assert_sentence(err.value, f"the run folder {run_dir} was deleted while the run was using it", "start a new run")
    assert not run_dir.exists()  # nothing recreated half-way


@pytest.fixture
def read_only(monkeypatch):
    """make(folder): the folder becomes read-only. chmod does it for ordinary users; root ignores file modes,
    so there the operating system's refusal (EACCES on creating or appending a file in it) is simulated."""
    frozen: list[Path] = []
    real_mkstemp, real_open = runs.tempfile.mkstemp, open

    def inside(path) -> bool:
        return any(Path(path).resolve().is_relative_to(f.resolve()) for f in frozen)

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and inside(dir):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    def guarded_open(path, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and inside(Path(path).parent):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, mode, *args, **kwargs)

    def make(folder: Path) -> None:
        folder.chmod(0o555)
        frozen.append(folder)

    def release() -> None:
        for folder in frozen:
            if folder.exists():
                folder.chmod(0o755)
        frozen.clear()

    if os.geteuid() == 0:
        monkeypatch.setattr(runs.tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(runs, "open", guarded_open, raising=False)
    make.release = release
    yield make
    release()


def test_run_folder_made_read_only_while_training_is_a_sentence_and_resumes(runs_root, read_only):
    config = RunConfig().replace(**SMALL)
    run_dir = runs.create_run(runs_root, config)
    with pytest.raises(CvdemoError) as err:
        run_training(config, run_dir, callbacks=[AtBatch(1, 1, lambda t: read_only(run_dir))])
    assert_sentence(err.value, f"the run folder {run_dir} cannot be written (Permission denied)",
                    "make it writable, then resume the run")
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1  # the finished epoch is kept
    read_only.release()
    summary = run_training(config, run_dir, resume=True)
    assert summary["status"] == "completed" and epoch_lines(run_dir) == [1, 2]


class HalfThenFull:
    """A file whose write puts down half the bytes, then fails as a full disk does."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(runs_root, monkeypatch):
    config = RunConfig().replace(**SMALL)
    run_dir = runs.create_run(runs_root, config)
    seen: dict[str, object] = {}
    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}")
        if seen.get("armed") and Path(target).name.startswith(".last.pt."):
            seen["temp"] = target
            return HalfThenFull(f)
        return f

    def arm(trainer):  # in epoch 2: remember epoch 1's last.pt, then fill the disk
        seen["before"] = (run_dir / "last.pt").read_bytes()
        seen["armed"] = True

    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(CvdemoError) as err:
        run_training(config, run_dir, callbacks=[AtBatch(1, 0, arm)])
    assert_sentence(err.value, f"the disk holding {run_dir} is full (No space left on device)",
                    "free some space, then resume the run")
    assert "temp" in seen, "the checkpoint write was never reached"
    assert (run_dir / "last.pt").read_bytes() == seen["before"]  # byte-for-byte the previous checkpoint
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert not Path(seen["temp"]).exists() and not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "is full" in status["message"]

    seen["armed"] = False  # space freed: the run resumes from epoch 1's checkpoint and finishes
    summary = run_training(config, run_dir, resume=True)
    assert summary["status"] == "completed" and epoch_lines(run_dir) == [1, 2]
