"""Runs as people see them in lists: which ones have weights to analyse, a label for a picker, a short name
for a chart legend, one table row per run.

    for r in runs_with_weights():
        print(run_label(r))         # "lenet on digits · started 14:03:12 · 9f2c"
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.checkpoint import has_checkpoint
from cvdemo.health import run_health
from cvdemo.runs import RunInfo

__all__ = ["runs_with_weights", "run_label", "short_name", "run_rows"]


def runs_with_weights(root: Path | str | None = None) -> list[RunInfo]:
    """Runs with a checkpoint to analyse (finished, or past their first epoch), newest first."""
    return [r for r in runs.list_runs(root) if has_checkpoint(r.path)]


def run_label(run: RunInfo) -> str:
    """Short text for a run in a picker: model, data, start time and the id's last 4 characters (not the
    state: a picker's text does not refresh while its run trains)."""
    started = time.strftime("%H:%M:%S", time.localtime(run.created)) if run.created else "?"
    data = Path(run.data).name if ("/" in run.data or "\\" in run.data) else run.data
    return f"{run.model} on {data} · started {started} · {run.id[-4:]}"


def short_name(run: RunInfo) -> str:
    """A few characters naming a run in chart legends and comparison tables: model and the id's last 4."""
    return f"{run.model} · {run.id[-4:]}"


def run_rows(found: list[RunInfo]) -> list[dict[str, Any]]:
    """One row per run: id, state, health (did it learn? see cvdemo.health), model, data, epochs
    done/planned, best val top-1, test top-1, message."""
    return [{"run": r.id, "state": r.state, "health": run_health(r.path).verdict, "model": r.model, "data": r.data,
             "epochs": f"{r.epochs_done}/{r.epochs}",
             "val top-1": r.best_val_top1, "test top-1": r.test_top1, "message": r.message} for r in found]
