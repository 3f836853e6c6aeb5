"""Shared by the reliability suite: a finished run that every test must leave byte-for-byte as it was,
with the builders of hostile files and the message checks in hostile.py.

Every test in this folder gets `existing_run` (autouse): a completed run copied into the runs folder the
test uses ($CVDEMO_RUNS), hashed before the test and compared after it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hostile import TINY, snapshot

from cvdemo import runs
from cvdemo.config import RunConfig

# -- the run that must survive everything ---------------------------------------------------------

@pytest.fixture(scope="session")
def trained_template(tmp_path_factory) -> Path:
    """A completed tiny run (trained once per session); tests get copies, never this folder."""
    from cvdemo.train.job import run_training

    root = tmp_path_factory.mktemp("reliability-template")
    config = RunConfig().replace(**TINY)
    run_dir = runs.create_run(root, config)
    summary = run_training(config, run_dir)
    assert summary["status"] == "completed", summary
    return run_dir


@pytest.fixture
def runs_root(isolated_store) -> Path:
    """The runs folder of this test ($CVDEMO_RUNS, set by tests/conftest.py), also seen by subprocesses."""
    root = Path(os.environ["CVDEMO_RUNS"])
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def copy_run(trained_template, runs_root):
    """copy_run(name) -> a fresh copy of the finished run under the runs folder, to damage at will."""
    def make(name: str) -> Path:
        return Path(shutil.copytree(trained_template, runs_root / name, symlinks=True))
    return make


@pytest.fixture(autouse=True)
def existing_run(trained_template, runs_root) -> Path:
    """A finished run already on disk: whatever the test throws at cvdemo, this folder stays byte-for-byte."""
    run_dir = Path(shutil.copytree(trained_template, runs_root / trained_template.name, symlinks=True))
    before = snapshot(run_dir)
    assert {"config.json", "status.json", "metrics.jsonl", "summary.json", "best.pt", "last.pt"} <= set(before)
    yield run_dir
    assert run_dir.is_dir(), "the existing run folder was removed"
    after = snapshot(run_dir)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"the existing run changed: {changed}"
    assert runs.read_status(run_dir)["state"] == "completed"
