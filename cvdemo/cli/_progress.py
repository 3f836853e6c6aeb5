"""The CLI's view of long phases (feature cache, validation, test, evaluation, LR finder): on stderr, so
stdout (and its --json line) stays the command's result alone.

On a terminal each phase is a tqdm bar; otherwise (a log file, a pipe, a test) a line when the phase starts,
one every LOG_EVERY_S seconds, and one when it ends:

    computing the frozen backbone's features: 0 / 2,400 images · starting
    computing the frozen backbone's features: 2,400 / 2,400 images in 0:07 · 310 images/s
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from cvdemo.progress import duration, phase_progress

__all__ = ["StderrPhases", "LOG_EVERY_S"]

LOG_EVERY_S = 10.0


class StderrPhases:
    """A phase listener (cvdemo.progress.listening) that shows each phase on `stream` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = tty
        self.bar: Any = None
        self.current: tuple[str, float] | None = None  # (phase, started) of the phase on screen
        self.printed = 0.0

    def __call__(self, snapshot: dict[str, Any]) -> None:
        stream = self.stream or sys.stderr
        tty = stream.isatty() if self.tty is None else self.tty
        key = (snapshot["phase"], snapshot["started"])
        new = key != self.current
        if new:
            self._close()
            self.current = key
        if tty:
            self._bar(snapshot, stream, new)
        else:
            self._line(snapshot, stream, new)
        if snapshot.get("final"):
            self._close()
            self.current = None

    def _bar(self, snapshot: dict[str, Any], stream: TextIO, new: bool) -> None:
        from tqdm import tqdm

        if new or self.bar is None:
            self.bar = tqdm(total=snapshot["total"], desc=snapshot["label"], unit=snapshot["unit"][:3],
                            leave=False, file=stream, dynamic_ncols=True)
        self.bar.n = min(snapshot["done"], snapshot["total"])
        self.bar.refresh()
        if snapshot.get("final"):
            print(_final_line(snapshot), file=stream)

    def _line(self, snapshot: dict[str, Any], stream: TextIO, new: bool) -> None:
        now = time.monotonic()
        if snapshot.get("final"):
            print(_final_line(snapshot), file=stream, flush=True)
        elif new or now - self.printed >= LOG_EVERY_S:
            p = phase_progress(snapshot, now=snapshot["time"])
            if p is not None:
                print(p["text"], file=stream, flush=True)
            self.printed = now

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _final_line(snapshot: dict[str, Any]) -> str:
    """"label: 2,400 / 2,400 images in 0:07 · 310 images/s" for a finished phase."""
    seconds = max(snapshot["time"] - snapshot["started"], 0.0)
    unit, done = snapshot["unit"], snapshot["done"]
    rate = f" · {done / seconds:,.0f} {unit}/s" if seconds > 0 else ""
    return f"{snapshot['label']}: {done:,} / {snapshot['total']:,} {unit} in {duration(seconds)}{rate}"
