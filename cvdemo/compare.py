"""Comparison tables across runs, and sweeps that fill them (reports 003 and 004 drew these by hand).

    cvdemo sweep --recipe lenet-digits --vary model=lenet,lenet_custom --vary lr=1e-3,3e-3

runs the grid as normal runs (one after another, or N at once in separate processes)
and writes the table as CSV, Markdown and JSON.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cvdemo.errors import ConfigError, CvdemoError
from cvdemo.run_list import short_name
from cvdemo.runs import RunInfo

# Short names on the command line for the two fields people vary most.
ALIASES = {"model": ("model", "name"), "data": ("data", "source")}
SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
METRIC_COLUMNS = ("top1", "top2", "top5", "macro_f1")


def resolve_key(key: str) -> tuple[str, str]:
    """'model' -> ('model', 'name'); 'lr' -> ('train', 'lr'); 'train.lr' -> ('train', 'lr')."""
    if key in ALIASES:
        return ALIASES[key]
    if "." in key:
        section, name = key.split(".", 1)
        if section in SECTIONS and name in {f.name for f in fields(SECTIONS[section])}:
            return section, name
    matches = [(s, key) for s, cls in SECTIONS.items() if key in {f.name for f in fields(cls)}]
    if len(matches) != 1:
        raise ConfigError(f"cannot vary '{key}': use a config field name such as model, lr, batch_size, "
                          f"optimizer or train.epochs")
    return matches[0]


def parse_vary(items: list[str]) -> dict[str, list[str]]:
    """['model=a,b', 'lr=1e-3,3e-3'] -> {'model': ['a', 'b'], 'lr': ['1e-3', '3e-3']}"""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values.strip():
            raise ConfigError(f"--vary takes KEY=V1,V2,..., got '{item}'")
        out[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return out


def _coerce(text: Any) -> Any:
    """Command-line text to the JSON value it spells (numbers, booleans), else the text itself."""
    if not isinstance(text, str):
        return text
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def expand_grid(base: RunConfig, vary: dict[str, list[Any]]) -> list[tuple[dict[str, Any], RunConfig]]:
    """Every combination of the varied values, each validated as a full RunConfig before anything runs."""
    keys = list(vary)
    grid = []
    for combo in itertools.product(*(vary[k] for k in keys)):
        changes: dict[str, dict[str, Any]] = {}
        for key, value in zip(keys, combo):
            section, name = resolve_key(key)
            changes.setdefault(section, {})[name] = _coerce(value)
        values = dict(zip(keys, (_coerce(v) for v in combo)))
        label = " ".join(f"{k}={v}" for k, v in values.items())
        grid.append((values, base.replace(**changes, name=label)))
    return grid


def comparison_rows(run_dirs: list[Path], varied: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per run: what varied, status, test top-1/top-2/top-5/macro-F1, parameters, seconds."""
    rows = []
    for i, run_dir in enumerate(run_dirs):
        run_dir = Path(run_dir)
        summary_path = run_dir / "summary.json"
        summary = runs.read_json(summary_path) if summary_path.exists() else {}
        config = runs.read_json(run_dir / "config.json")
        test = summary.get("test") or {}
        row: dict[str, Any] = {"run": run_dir.name}
        row.update(varied[i] if varied else {"model": config["model"]["name"], "data": config["data"]["source"]})
        row["status"] = runs.read_status(run_dir).get("state")
        row.update({m: test.get(m) for m in METRIC_COLUMNS})
        row["params"] = summary.get("params_total")
        row["seconds"] = round(summary["seconds"], 1) if "seconds" in summary else None
        rows.append(row)
    return rows


# The app's column names for comparison_rows' keys.
RESULT_NAMES = {"top1": "test top-1", "top2": "test top-2", "top5": "test top-5", "macro_f1": "test macro-F1",
                "params": "parameters", "status": "state"}


def result_rows(found: list[RunInfo]) -> list[dict[str, Any]]:
    """comparison_rows (test top-1/2/5, macro-F1, parameters, seconds) under readable column names, with the
    settings people vary most (pretrained, epochs done, lr, batch size, optimizer, augment), one row per run."""
    rows = []
    for r, row in zip(found, comparison_rows([r.path for r in found])):
        config = runs.read_json_or_empty(Path(r.path) / "config.json")
        train = config.get("train", {})
        row["data"] = r.data_name or row.get("data")  # an upload by its own file name, never a server path
        rows.append({"run": short_name(r), **{RESULT_NAMES.get(k, k): v for k, v in row.items() if k != "run"},
                     "pretrained": config.get("model", {}).get("pretrained"), "epochs": r.epochs_done,
                     "lr": train.get("lr"), "batch size": train.get("batch_size"),
                     "optimizer": train.get("optimizer"), "augment": config.get("data", {}).get("augment"),
                     "best val top-1": r.best_val_top1})
    return rows


def flat_config(run_dir: Path) -> dict[str, Any]:
    """{"train.lr": 0.003, ...}: every setting of a run's config.json, lists as comma-separated text; the
    data source as people know it (an uploaded zip by its own file name, not the server path it is stored at)."""
    config = runs.read_json_or_empty(Path(run_dir) / "config.json")
    flat = {f"{section}.{k}": (", ".join(map(str, v)) if isinstance(v, list) else v)
            for section, values in config.items() if isinstance(values, dict)
            for k, v in values.items()}
    if isinstance(flat.get("data.source"), str):
        flat["data.source"] = runs.data_display_name(flat["data.source"])
    return flat


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("top1", "top2", "top5"):
        return f"{value:.1%}"
    if key == "macro_f1":
        return f"{value:.3f}"
    if key == "params":
        return f"{value / 1e6:.2f}M"
    return str(value)


def to_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(_cell(k, r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
    """comparison.csv, comparison.md and comparison.json in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext, text in (("csv", to_csv(rows)), ("md", to_markdown(rows)), ("json", json.dumps(rows, indent=2))):
        path = folder / f"comparison.{ext}"
        runs.write_atomic(path, text.encode())
        out[ext] = str(path)
    return out


def run_sweep(base: RunConfig, vary: dict[str, list[Any]], root: Path, *, parallel: int = 1,
              on_run: Callable[[dict[str, Any], Path], None] | None = None,
              callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train every combination (normal runs under `root`) and write the comparison tables.

    parallel=1 trains in this process, one after another; parallel>1 keeps up to that many
    training processes going. A run that fails is recorded in the table and the sweep goes on.
    """
    grid = expand_grid(base, vary)
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {parallel}")
    root = Path(root)
    run_dirs: list[Path] = []
    if parallel == 1:
        from cvdemo.train.job import run_training

        for values, config in grid:
            run_dir = runs.create_run(root, config)
            run_dirs.append(run_dir)
            if on_run:
                on_run(values, run_dir)
            try:
                run_training(config, run_dir, callbacks=callbacks)
            except CvdemoError:
                pass  # recorded as failed in the run folder and in the table
    else:
        pending = list(grid)
        active: list[Path] = []
        while pending or active:
            while pending and len(active) < parallel:
                values, config = pending.pop(0)
                run_dir = runs.launch(config, root)
                run_dirs.append(run_dir)
                active.append(run_dir)
                if on_run:
                    on_run(values, run_dir)
            time.sleep(0.5)
            active = [d for d in active if runs.read_status(d)["state"] in ("queued", "running")]
    rows = comparison_rows(run_dirs, [v for v, _ in grid])
    folder = root / "sweeps" / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    return {"folder": str(folder), "rows": rows, "files": write_tables(rows, folder)}
