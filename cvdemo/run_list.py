"""Runs as people see them in lists: which ones have weights to analyse, a label for a picker, a short name
for a chart legend, one table row per run.

    for r in runs_with_weights():
        print(run_label(r))         # "lenet on digits · started 14:03:12 · 9f2c"
    labels = run_labels(found)      # {id: "lenet on digits · lr 0.1 · started 14:03:12 · 9f2c"}: what differs
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.checkpoint import has_checkpoint
from cvdemo.health import run_health
from cvdemo.public_names import public_text
from cvdemo.runs import RunInfo

__all__ = ["runs_with_weights", "run_label", "run_labels", "short_name", "run_rows"]


def runs_with_weights(root: Path | str | None = None) -> list[RunInfo]:
    """Runs with a checkpoint to analyse (finished, or past their first epoch), newest first."""
    return [r for r in runs.list_runs(root) if has_checkpoint(r.path)]


def run_label(run: RunInfo, settings: str = "") -> str:
    """Text for a run in a picker: its name when it has one, else model and data (and `settings`, what sets
    it apart from the runs beside it: see `run_labels`), then the start time and the id's last 4
    characters (not the state: a picker's text does not refresh while its run trains)."""
    started = time.strftime("%H:%M:%S", time.localtime(run.created)) if run.created else "?"
    what = run.name or f"{run.model} on {run.data_name or run.data}" + (f" · {settings}" if settings else "")
    return f"{what} · started {started} · {run.id[-4:]}"


def run_labels(found: list[RunInfo]) -> dict[str, str]:
    """{run id: picker text} for runs shown together: an unnamed run also names the settings in which it
    differs from the other runs of the same model on the same data ("lr 0.1, batch_size 64")."""
    configs = {r.id: runs.read_json_or_empty(Path(r.path) / "config.json") for r in found}
    groups: dict[tuple[str, str], list[RunInfo]] = {}
    for r in found:
        groups.setdefault((r.model, r.data), []).append(r)
    labels = {}
    for group in groups.values():
        flat = {r.id: _flat_settings(configs[r.id]) for r in group}
        keys = sorted({k for f in flat.values() for k in f})
        varied = [k for k in keys if len({repr(f.get(k)) for f in flat.values()}) > 1]
        for r in group:
            shown = [f"{k.split('.')[-1]} {_short(flat[r.id].get(k))}" for k in varied[:3]]
            labels[r.id] = run_label(r, ", ".join(shown))
    return labels


def _flat_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings people change, as {"train.lr": 0.1, ...}; bookkeeping (seed aside) left out."""
    out = {}
    for section in ("data", "model", "train"):
        for k, v in (config.get(section) or {}).items():
            if k not in ("source", "name", "workers", "device"):
                out[f"{section}.{k}"] = tuple(v) if isinstance(v, list) else v
    return out


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def short_name(run: RunInfo) -> str:
    """A few characters naming a run in chart legends and comparison tables: its name, else model and the
    id's last 4."""
    return run.name or f"{run.model} · {run.id[-4:]}"


def run_rows(found: list[RunInfo]) -> list[dict[str, Any]]:
    """One row per run: id, state, health (did it learn? see cvdemo.health), model, data, epochs
    done/planned, best val top-1, test top-1, message (with no server path: see public_names.public_text)."""
    return [{"run": r.id, "state": r.state, "health": run_health(r.path).verdict, "model": r.model,
             "data": r.data_name or r.data,
             "epochs": f"{r.epochs_done}/{r.epochs}",
             "val top-1": r.best_val_top1, "test top-1": r.test_top1,
             "message": public_text(r.message)} for r in found]  # a failed run's names the user's file
