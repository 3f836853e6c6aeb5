"""What a lesson's runs showed: a comparison table and a "what you should see" text measured from them.

    result = run_lesson(load_lesson("learning-rate"), Path("runs"))
    print(result["outcome"])
    # The run at lr 1.0 diverged at step 8 (loss 7.01e+05). lr 0.001 reached 85.3% test top-1; lr 0.03 97.2%. ...

`lesson_rows` and `lesson_outcome` take any runs with labels, so the Runs page compares runs that no
lesson started the same way. Each arm's verdict is `cvdemo.health`'s; its numbers are the run folder's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.errors import CvdemoError
from cvdemo.health import run_health
from cvdemo.lessons import Lesson, list_lessons, load_lesson

__all__ = ["ACTIVE", "lesson_rows", "lesson_outcome", "run_labels", "run_lesson", "format_table", "lesson_link",
           "lesson_from_link"]

Labelled = list[tuple[str, Path]]       # (what differs, run folder), one per arm
ACTIVE = ("queued", "running")
GAP = 0.05        # train top-1 this far above validation top-1 at the end is worth saying
SPREAD = 0.10     # arms this far apart after their first epoch: say who learned faster


def _epochs(run_dir: Path) -> list[dict[str, Any]]:
    return [m for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def lesson_rows(arms: Labelled) -> list[dict[str, Any]]:
    """One row per arm: arm, state, health verdict, best validation top-1, test top-1, seconds, run id."""
    rows = []
    for label, run_dir in arms:
        run_dir = Path(run_dir)
        summary = runs.read_json_or_empty(run_dir / "summary.json")
        val = [m["val_top1"] for m in _epochs(run_dir) if isinstance(m.get("val_top1"), (int, float))]
        seconds = summary.get("seconds")
        rows.append({"arm": label, "state": runs.read_status(run_dir).get("state", "failed"),
                     "health": run_health(run_dir).verdict, "best val top-1": max(val) if val else None,
                     "test top-1": (summary.get("test") or {}).get("top1"),
                     "seconds": round(seconds, 1) if isinstance(seconds, (int, float)) else None,
                     "run": run_dir.name})
    return rows


def _diverged_at(run_dir: Path) -> tuple[int | None, float | None]:
    """(step, loss) where the run's loss blew up, from summary.json or the last metrics record."""
    blew = runs.read_json_or_empty(run_dir / "summary.json").get("diverged")
    if isinstance(blew, dict):
        try:
            loss: float | None = float(blew.get("loss"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            loss = None
        return blew.get("step"), loss
    marks = [m for m in runs.read_metrics(run_dir) if m.get("diverged")]
    return (marks[0].get("step"), marks[0].get("loss")) if marks else (None, None)


def _arm_sentence(label: str, row: dict[str, Any], run_dir: Path) -> str:
    state, verdict = row["state"], row["health"]
    if state == "diverged" or verdict == "diverged":
        step, loss = _diverged_at(run_dir)
        at = f" at step {step}" if step is not None else ""
        value = f" (loss {loss:.3g})" if loss is not None and math.isfinite(loss) else \
            " (loss not a number)" if step is not None else ""
        return f"The run at {label} diverged{at}{value} and stopped."
    if state != "completed":
        return f"{label} ended {state}."
    top1 = row["test top-1"]
    text = f"{label} reached {_pct(top1)} test top-1"
    last = _epochs(run_dir)[-1:] or [{}]
    train, val = last[0].get("train_top1"), last[0].get("val_top1")
    if verdict in ("did not learn", "unstable"):
        text += f", but its verdict is '{verdict}'"
    if isinstance(train, (int, float)) and isinstance(val, (int, float)) and train - val >= GAP:
        text += f" ({_pct(train)} on its training images, {_pct(val)} on validation at the end"
        text += ": overfitting)" if verdict == "overfitting" else ")"
    return text + "."


def lesson_outcome(arms: Labelled) -> str | None:
    """The "what you should see" text, measured from the arms' runs; None while any arm is still queued
    or running (a text written from half the evidence would mislead)."""
    arms = [(label, Path(run_dir)) for label, run_dir in arms]
    rows = lesson_rows(arms)
    if not rows or any(r["state"] in ACTIVE for r in rows):
        return None
    parts = [_arm_sentence(label, row, run_dir) for (label, run_dir), row in zip(arms, rows)]
    done = [(label, row, run_dir) for (label, run_dir), row in zip(arms, rows)
            if row["state"] == "completed" and row["test top-1"] is not None]
    firsts: dict[str, float] = {}
    for label, _, run_dir in done:
        first = (_epochs(run_dir)[:1] or [{}])[0].get("val_top1")
        if isinstance(first, (int, float)):
            firsts[label] = float(first)
    if len(firsts) >= 2 and max(firsts.values()) - min(firsts.values()) >= SPREAD:
        parts.append("After one epoch the validation top-1 was " +
                     ", ".join(f"{_pct(v)} for {k}" for k, v in firsts.items()) + ".")
    if len(done) >= 2:
        ranked = sorted(done, key=lambda d: d[1]["test top-1"], reverse=True)
        best, worst = ranked[0], ranked[-1]
        lead = (best[1]["test top-1"] - worst[1]["test top-1"]) * 100
        parts.append(f"Best: {best[0]}, {lead:.1f} points ahead of {worst[0]}." if lead >= 0.5 else
                     f"All finished within half a point of each other ({_pct(worst[1]['test top-1'])} to "
                     f"{_pct(best[1]['test top-1'])}).")
        timed = [(label, row["seconds"]) for label, row, _ in done if row["seconds"]]
        if len(timed) >= 2:
            fast, slow = min(timed, key=lambda t: t[1]), max(timed, key=lambda t: t[1])
            if slow[1] >= 2 * fast[1]:
                parts.append(f"{fast[0]} trained in {fast[1]:.0f} s, {slow[0]} in {slow[1]:.0f} s.")
    return " ".join(parts)


def lesson_link(name: str, run_dirs: list[Path]) -> dict[str, str]:
    """The query parameters that name a lesson shown with these runs (its arms' runs, in the arms' order):
    {"lesson": name, "runs": "id1,id2,..."}. Run ids only, never folders: `lesson_from_link` reads them back."""
    return {"lesson": name, "runs": ",".join(Path(d).name for d in run_dirs)}


def lesson_from_link(params: dict[str, str], root: Path) -> tuple[Lesson, Labelled] | None:
    """The lesson and its (arm label, run folder) pairs that `lesson_link`'s parameters name, the runs
    looked up under `root` by id; None when the parameters name no lesson. CvdemoError, one sentence, for
    a lesson that is not one of `list_lessons()` (a path is not a lesson name here), a wrong number of
    runs, or an id that is not a run under root."""
    name = params.get("lesson")
    if not name:
        return None
    if name not in list_lessons():
        raise CvdemoError(f"the link names no lesson called {name[:40]!r}")
    lesson = load_lesson(name)
    ids = [i for i in str(params.get("runs", "")).split(",") if i]
    if len(ids) != len(lesson.arms):
        raise CvdemoError(f"the link names {len(ids)} runs for the lesson '{name}', which has {len(lesson.arms)} arms")
    found = []
    for run_id in ids:
        run_dir = runs.run_path(run_id, root)  # refuses anything but a plain folder name
        if not (run_dir / "config.json").is_file():
            raise CvdemoError(f"the link's run {run_id[:40]!r} is not among the runs here (it may have been deleted)")
        found.append(Path(run_dir))
    return lesson, [(arm.label, run_dir) for arm, run_dir in zip(lesson.arms, found)]


def run_labels(run_dirs: list[Path]) -> list[str]:
    """A legend label per run: its config's name when it has one (a lesson arm's is what differs, like
    "lr 0.0003"), else model and id; repeated labels get the run id's last 4 characters."""
    names = []
    for run_dir in run_dirs:
        config = runs.read_json_or_empty(Path(run_dir) / "config.json")
        name = config.get("name") or f"{(config.get('model') or {}).get('name', '?')}"
        names.append(str(name))
    return [f"{n} · {Path(d).name[-4:]}" if names.count(n) > 1 else n for n, d in zip(names, run_dirs)]


def run_lesson(lesson: Lesson, root: Path, data: str | None = None,
               on_arm: Callable[[str, Path], None] | None = None,
               callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train every arm of `lesson` in this process, one after another (on a 2-core laptop two runs at
    once only share the same cores), then measure: {"lesson", "rows", "outcome", "seconds", "runs"}.
    A failed arm is recorded as such in its row and the others still run; a cancelled one (Ctrl-C) ends
    the lesson there."""
    from cvdemo.train.job import run_training

    configs = lesson.configs_for(data)  # validated before any arm starts
    started = time.time()
    arms: Labelled = []
    for label, config in configs:
        run_dir = runs.create_run(root, config)
        arms.append((label, run_dir))
        if on_arm is not None:
            on_arm(label, run_dir)
        try:
            summary = run_training(config, run_dir, callbacks=callbacks)
        except CvdemoError:
            continue  # the run folder says failed, and why; the table shows it
        if summary.get("status") == "cancelled":  # Ctrl-C or SIGTERM: stop the lesson, not just this arm
            break
    return {"lesson": lesson.name, "title": lesson.title, "question": lesson.question,
            "rows": lesson_rows(arms), "outcome": lesson_outcome(arms), "seconds": round(time.time() - started, 1),
            "runs": [str(d) for _, d in arms]}


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of `lesson_rows` as a fixed-width text table for a terminal."""
    heads = ("arm", "state", "health", "best val top-1", "test top-1", "seconds")
    cells = [[str(r["arm"]), str(r["state"]), str(r["health"]), _pct(r["best val top-1"]), _pct(r["test top-1"]),
              "-" if r["seconds"] is None else f"{r['seconds']:.1f}"] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = "  ".join(h.ljust(w) for h, w in zip(heads, widths))
    return "\n".join([line, "-" * len(line)] + ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells])
