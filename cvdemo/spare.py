"""A spare training process: started ahead, its imports done, waiting to be handed a run.

A run started from the app trains in a process of its own (`runs.launch`), and a fresh Python process spends
about 2.5 s on this 2-core machine importing torch, torch._dynamo (every torch optimizer imports it on its
first step) and cvdemo's trainer before its first step: the wait between a teacher's click on Start and the
first point of the curve. The app therefore keeps one spare `cvdemo worker` process that has done those imports
at the lowest CPU priority (SCHED_IDLE: it only uses cores nothing else wants, so it never slows a run that
trains meanwhile) and then waits on its stdin. `launch` hands it the run's command line and log file; the
spare returns to normal priority, sends its output to the log and runs the command exactly as a fresh process
would (same `cvdemo` entry point, same pid in launch.json, cancelled by the same signal).

    spare.keep_ready()                                   # the app, after drawing each page: one spare waiting
    pid = spare.hand_over(["train", "--run-dir", d], log) # None when there is no usable spare: start one fresh

A spare is used only while nothing it inherited has changed (environment, working folder, interpreter), and it
ends by itself when the app does (its stdin closes). Nothing here is needed for correctness: without a spare,
or with CVDEMO_SPARE=0, every run starts in a fresh process as before. None of the libraries involved offers
this (multiprocessing's forkserver forks a process that has imported only what its preload list names, and
hands over Python objects, not a command line with its own log), so it is written here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

__all__ = ["enabled", "keep_ready", "waiting", "hand_over", "discard", "idle_priority", "normal_priority"]

_lock = threading.Lock()
_spare: subprocess.Popen[bytes] | None = None
_born_with: tuple[dict[str, str], str, str] | None = None  # (environment, working folder, interpreter)


def enabled() -> bool:
    """False when $CVDEMO_SPARE is 0 / off / no / false, or where the platform has no SCHED_IDLE (not Linux)."""
    off = os.environ.get("CVDEMO_SPARE", "1").strip().lower() in ("0", "off", "no", "false")
    return not off and hasattr(os, "SCHED_IDLE")


def _context() -> tuple[dict[str, str], str, str]:
    return dict(os.environ), os.getcwd(), sys.executable


def keep_ready() -> None:
    """Start a spare worker unless one is already waiting (cheap when one is: a poll of its process)."""
    global _spare, _born_with
    if not enabled():
        return
    with _lock:
        if _spare is not None and _spare.poll() is None and _born_with == _context():
            return
        _discard()
        _born_with = _context()
        _spare = subprocess.Popen([sys.executable, "-m", "cvdemo", "worker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)  # like a launched run: the app's Ctrl-C is not its


def waiting() -> int | None:
    """The pid of the spare waiting for a run, or None."""
    with _lock:
        return _spare.pid if _spare is not None and _spare.poll() is None else None


def hand_over(argv: list[str], log: Path) -> int | None:
    """Give the waiting spare the `cvdemo` command line `argv`, its output appended to `log`; the spare's pid,
    or None when there is no spare that may be used (then start a fresh process). The spare is used once."""
    global _spare
    with _lock:
        proc, _spare = _spare, None
        if proc is None:
            return None
        if proc.poll() is not None or _born_with != _context() or proc.stdin is None:
            _stop(proc)
            return None
        try:
            proc.stdin.write((json.dumps({"argv": [str(a) for a in argv], "log": str(log)}) + "\n").encode())
            proc.stdin.close()
        except OSError:  # it died between the poll and the write
            _stop(proc)
            return None
        return proc.pid


def discard() -> None:
    """End the waiting spare, if any (tests; an app that turns spares off)."""
    with _lock:
        _discard()


def _discard() -> None:
    global _spare
    if _spare is not None:
        _stop(_spare)
        _spare = None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdin is not None:
            proc.stdin.close()  # a waiting spare exits on end of input
    except OSError:
        pass
    try:
        proc.wait(timeout=0.2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def idle_priority() -> None:
    """Run this process's threads only on otherwise idle cores (Linux SCHED_IDLE)."""
    _set_policy(os.SCHED_IDLE)


def normal_priority() -> None:
    """Back to the normal policy, for every thread of the process (threads started later inherit it)."""
    _set_policy(os.SCHED_OTHER)


def _set_policy(policy: int) -> None:
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        try:
            os.sched_setscheduler(tid, policy, os.sched_param(0))
        except OSError:  # a thread that ended meanwhile, or a platform without the policy
            pass
