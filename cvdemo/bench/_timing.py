"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeat: int = 1) -> float:
    """Best wall time of `repeat` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class Best:
    """The shortest wall time and the shortest CPU time (all threads of this process) of a function's calls,
    and its last result. CPU time is what the call itself consumed, so it barely moves when other programs
    take turns on the cores; wall time is what a user waits."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn, self.wall, self.cpu, self.result = fn, float("inf"), float("inf"), None

    def __call__(self) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.result = self.fn()
        self.cpu = min(self.cpu, time.process_time() - cpu)
        self.wall = min(self.wall, time.perf_counter() - wall)
