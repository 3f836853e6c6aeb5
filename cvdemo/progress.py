"""How far a run is, and how long it has left: read from its metric records, so the CLI and the app agree.

    p = progress(run_info(run_dir), read_metrics(run_dir))
    print(f"{p['done']}/{p['total']} epochs, {duration(p['eta'])} left")
"""

from __future__ import annotations

import time
from typing import Any

from cvdemo.runs import RunInfo

__all__ = ["progress", "duration"]


def progress(run: RunInfo, metrics: list[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """How far a run is: {"fraction": of its epochs in [0, 1] (within an epoch too, from the step records),
    "done": epochs finished, "total": epochs planned, "eta": seconds left (None until two timed records of a
    queued or running run exist), "images_per_s": the last epoch's speed or None}. `now`: time.time() by default.
    """
    epochs = [m for m in metrics if m.get("kind") == "epoch"]
    steps = [m for m in metrics if m.get("kind") == "step"]
    total = max(run.epochs, 1)
    points = sorted((m["epoch"], m["time"]) for m in steps + epochs if "time" in m and "epoch" in m)
    at = points[-1][0] if points else 0.0
    eta = None
    if len(points) >= 2 and run.state in ("queued", "running") and points[-1][0] > points[0][0]:
        per_epoch = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
        now = time.time() if now is None else now
        eta = max(0.0, per_epoch * (total - at) - (now - points[-1][1]))
    speed = epochs[-1].get("images_per_s") if epochs else None
    return {"fraction": min(at / total, 1.0), "done": len(epochs), "total": total, "eta": eta, "images_per_s": speed}


def duration(seconds: float | None) -> str:
    """Seconds as "m:ss" below an hour, "XhMM" above; "—" for None (not known yet)."""
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
