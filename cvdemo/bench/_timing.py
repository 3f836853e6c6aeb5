"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeat: int = 1, device: Any = None) -> float:
    """Best wall time of `repeat` calls, in seconds. On a CUDA `device` one untimed warm-up call comes first
    (kernel selection, cuDNN autotuning, the allocator's first blocks) and each timed call starts and ends
    with torch.cuda.synchronize(), so queued GPU work is counted in the call that queued it."""
    cuda = getattr(device, "type", None) == "cuda"
    if cuda:
        fn()
    best = float("inf")
    for _ in range(repeat):
        sync(cuda)
        start = time.perf_counter()
        fn()
        sync(cuda)
        best = min(best, time.perf_counter() - start)
    return best


def sync(cuda: bool) -> None:
    """Wait for the GPU's queued work (nothing off CUDA)."""
    if cuda:
        import torch

        torch.cuda.synchronize()


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
