"""How far a run is, and how long it has left: read from its metric records, so the CLI and the app agree;
and how far a long phase inside it is (the feature cache, validation, the test pass, an evaluation).

    p = progress(run_info(run_dir), read_metrics(run_dir))
    print(f"{p['done']}/{p['total']} epochs, {duration(p['eta'])} left")

A long loop reports its phase to whoever listens, at most four times a second:

    with listening(print):                      # the CLI: a bar on stderr; a run: status.json
        with phase("test", "testing the best checkpoint", total=len(images)) as meter:
            for x, y in loader:
                ...
                meter.add(len(y))

Nobody listening costs one clock read per batch. `phase_progress(status)` turns what a run wrote to
status.json back into a fraction, a rate, a time left and one line of text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.runs import RunInfo

__all__ = ["progress", "duration", "Phase", "phase", "listening", "phase_progress", "phase_text",
           "PhaseListener", "PHASE_KEYS", "HEAD_ONLY", "status_listener", "live_progress"]

# What a listener receives: {"phase": short name, "label": words for a person, "done", "total" (in `unit`),
# "unit": "images" or "batches", "started": time.time() when the phase began, "time": time.time() now,
# "final": True on the phase's last report}.
PhaseListener = Callable[[dict[str, Any]], None]
# The status.json keys a phase adds to a run's status (runs.write_status(..., phase=..., done=..., total=...)).
PHASE_KEYS = ("phase", "phase_label", "done", "total", "unit", "phase_started")
# How the images/s of an epoch trained on the frozen backbone's stored features reads.
HEAD_ONLY = "head only, on stored features"
# Listeners of this thread/context: the CLI adds a stderr bar, a training job its status.json writer.
_listeners: ContextVar[tuple[PhaseListener, ...]] = ContextVar("cvdemo_phase_listeners", default=())


@contextmanager
def listening(listener: PhaseListener | None, *, replace: bool = False) -> Iterator[None]:
    """Send every phase report made inside this block (in this thread) to `listener` too; `replace=True`:
    to it alone (None: to nobody, e.g. a torchrun rank that stays silent)."""
    own = () if listener is None else (listener,)
    token = _listeners.set(own if replace else (*_listeners.get(), *own))
    try:
        yield
    finally:
        _listeners.reset(token)


class Phase:
    """A long loop's progress: `add(n)` after each batch; reports reach the listeners at most once per
    `interval` seconds, first when the phase has lasted `after` seconds (0: at once, announcing it), and once
    more when it finishes (if it was reported at all), so short phases stay silent."""

    def __init__(self, name: str, label: str, total: int, *, unit: str = "images", interval: float = 0.25,
                 after: float = 0.0, listeners: tuple[PhaseListener, ...] | None = None):
        self.name, self.label, self.total, self.unit = name, label, int(total), unit
        self.interval, self.after = interval, after
        self.listeners = _listeners.get() if listeners is None else listeners
        self.done = 0
        self.started = time.time()
        self._clock = time.monotonic()
        self._next = self._clock + after
        self.reported = False
        if after <= 0:
            self._report(final=False)

    def add(self, n: int) -> None:
        """`n` more units done (a batch's images: `len(labels)`, never a value read from the GPU)."""
        self.done += int(n)
        if self.listeners and time.monotonic() >= self._next:
            self._report(final=False)

    def finish(self) -> None:
        """The phase is over: a last report, with done == total, to those that heard of it."""
        if self.reported:
            self.done = max(self.done, self.total)
            self._report(final=True)

    def _report(self, final: bool) -> None:
        if not self.listeners:
            return
        self.reported = True
        self._next = time.monotonic() + self.interval
        snapshot = {"phase": self.name, "label": self.label, "done": self.done, "total": self.total,
                    "unit": self.unit, "started": self.started, "time": time.time(), "final": final}
        for listener in self.listeners:
            listener(snapshot)

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if kind is None:
            self.finish()


def phase(name: str, label: str, total: int, **options: Any) -> Phase:
    """A Phase reporting to the listeners of the current context (see `listening`); options as Phase's."""
    return Phase(name, label, total, **options)


def status_listener(run_dir: Any) -> PhaseListener:
    """A listener that adds each phase report to the run's status.json, keeping its state, message and other
    fields (the epoch it is in): runs.write_status(run_dir, state, message, phase=..., done=..., total=...)."""
    path = Path(run_dir) / "status.json"

    def write(snapshot: dict[str, Any]) -> None:
        try:
            current = runs.read_json(path)
        except (OSError, ValueError):
            current = {}
        keep = {k: v for k, v in current.items()
                if k not in ("state", "message", "pid", "host", "updated", *PHASE_KEYS)}
        runs.write_status(run_dir, current.get("state", "running"), current.get("message", ""), **keep,
                          phase=snapshot["phase"], phase_label=snapshot["label"], done=snapshot["done"],
                          total=snapshot["total"], unit=snapshot["unit"], phase_started=snapshot["started"])
    return write


def phase_progress(status: dict[str, Any], now: float | None = None) -> dict[str, Any] | None:
    """The phase a run's status.json reports (None when it reports none): {"phase", "label", "done", "total",
    "unit", "fraction" in [0, 1], "rate": units per second or None (not measurable yet), "eta": seconds left
    or None, "text": one line, e.g. "testing the best checkpoint: 1,234 / 2,400 images · 310 images/s ·
    0:04 left"}. Also takes a listener's snapshot. `now`: time.time() by default."""
    if not status.get("phase") or not isinstance(status.get("total"), int | float):
        return None
    label = status.get("phase_label") or status.get("label") or status["phase"]
    done, total = max(int(status.get("done") or 0), 0), max(int(status["total"]), 0)
    started = status.get("phase_started", status.get("started"))
    at = status.get("time", status.get("updated"))
    rate = eta = None
    if isinstance(started, int | float) and isinstance(at, int | float) and done > 0 and at > started:
        rate = done / (at - started)
        now = time.time() if now is None else now
        eta = max(0.0, (total - done) / rate - max(0.0, now - at))
    p = {"phase": status["phase"], "label": label, "done": done, "total": total,
         "unit": status.get("unit") or "images", "fraction": min(done / total, 1.0) if total else 0.0,
         "rate": rate, "eta": eta}
    return {**p, "text": phase_text(p)}


def phase_text(p: dict[str, Any]) -> str:
    """One line for a phase_progress result: "label: done / total unit · rate unit/s · m:ss left"."""
    unit = p["unit"]
    text = f"{p['label']}: {p['done']:,} / {p['total']:,} {unit}"
    if p["rate"] is None:
        return text + " · starting"
    return text + f" · {p['rate']:,.0f} {unit}/s · {duration(p['eta'])} left"


def progress(run: RunInfo, metrics: list[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """How far a run is: {"fraction": of its epochs in [0, 1] (within an epoch too, from the step records),
    "done": epochs finished, "total": epochs planned, "eta": seconds left (None until two timed records of a
    queued or running run exist), "images_per_s": the last epoch's speed or None, "head_only": True when that
    speed is of the head alone on stored backbone features (HEAD_ONLY)}. `now`: time.time() by default.
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
    return {"fraction": min(at / total, 1.0), "done": len(epochs), "total": total, "eta": eta, "images_per_s": speed,
            "head_only": bool(epochs and epochs[-1].get("head_only"))}


def live_progress(run: RunInfo, metrics: list[dict[str, Any]], status: dict[str, Any],
                  now: float | None = None) -> dict[str, Any]:
    """What a page watching a run shows: `progress`'s fields, plus "phase" (phase_progress of its status, None
    between phases), the bar ("bar_fraction", "bar_text": the phase's line while one runs, else the epochs'),
    "time_left" (the phase's while the run's is not known or is only the phase left: the feature cache before
    the first epoch, the test after the last) and "speed_label" ("images / s", or saying it is the head alone)."""
    p = progress(run, metrics, now)
    ph = phase_progress(status, now) if run.state in ("queued", "running") else None
    time_left = p["eta"]
    if ph is not None and (time_left is None or ph["phase"] in ("features", "test")):
        time_left = ph["eta"]
    bar_text = f"epoch {min(p['done'] + 1, p['total'])} of {p['total']}" if p["done"] < p["total"] else ""
    return {**p, "phase": ph, "bar_fraction": ph["fraction"] if ph else p["fraction"],
            "bar_text": ph["text"] if ph else bar_text, "time_left": time_left,
            "speed_label": f"images / s ({HEAD_ONLY})" if p["head_only"] else "images / s"}


def duration(seconds: float | None) -> str:
    """Seconds as "m:ss" below an hour, "XhMM" above; "—" for None (not known yet)."""
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
