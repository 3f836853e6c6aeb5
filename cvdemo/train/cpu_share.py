"""Runs training side by side on a CPU each take their share of the cores, not all of them.

PyTorch sizes its thread pool for the whole machine in every process. Two runs at once on 2 cores then
run 4 busy threads that keep evicting each other, and each run goes at far less than half its speed
alone (issue 17 measured 34 images/s alone, 9 with a few small runs beside it). So a CPU run announces
itself with a marker file `<runs root>/.cpu/<pid>` and, when it starts and every few seconds while it
trains, sets its intra-op threads to the cores it started with divided by the runs announced there
whose process is still alive. When a neighbour ends, the others take its cores back.

    with share_cores(run_dir.parent) as share:   # threads set at once: the feature cache and tests share too
        run_training(config, run_dir, callbacks=[share])

$CVDEMO_SHARE_CORES=0 turns it off (each run then takes every core, as PyTorch does by default).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from cvdemo.limits import share_cores_enabled
from cvdemo.runs import process_alive

__all__ = ["CoreShare", "share_cores", "live_cpu_runs", "threads_for"]

REFRESH_S = 2.0  # how often a training run looks for neighbours that started or ended


def threads_for(cores: int, runs: int) -> int:
    """Intra-op threads of one of `runs` CPU runs sharing `cores` threads: an equal share, at least one."""
    return max(1, cores // max(1, runs))


def live_cpu_runs(folder: Path) -> int:
    """CPU runs announced in `folder` whose process is alive; markers of dead processes are removed."""
    count = 0
    for marker in folder.glob("*"):
        if not marker.name.isdigit():
            continue
        if process_alive(int(marker.name)):
            count += 1
        else:
            marker.unlink(missing_ok=True)  # a run that was killed -9 leaves its marker behind
    return count


class CoreShare:
    """Trainer callback (and context, through `share_cores`) that keeps this process at its share."""

    def __init__(self, root: Path | str, cores: int | None = None):
        self.folder = Path(root) / ".cpu"
        self.cores = cores or torch.get_num_threads()
        self.marker = self.folder / str(os.getpid())
        self.checked = 0.0
        self.threads = self.cores

    def start(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.marker.touch()
        except OSError:  # a read-only runs folder: train alone, at full width
            return
        self.refresh()

    def refresh(self) -> None:
        self.checked = time.monotonic()
        threads = threads_for(self.cores, live_cpu_runs(self.folder))
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads

    def stop(self) -> None:
        self.marker.unlink(missing_ok=True)
        if self.threads != self.cores:
            torch.set_num_threads(self.cores)
            self.threads = self.cores

    def on_batch_end(self, trainer: Any, info: Any) -> None:
        # Called on the training thread: OpenMP's thread count is per calling thread, so it is set here.
        if time.monotonic() - self.checked >= REFRESH_S:
            self.refresh()


class _NoShare:
    """What `share_cores` yields when sharing is off or the run is not on the CPU: a callback that does nothing."""

    threads = None

    def on_batch_end(self, trainer: Any, info: Any) -> None:
        return None


@contextmanager
def share_cores(root: Path | str, device: str = "cpu", enabled: bool = True) -> Iterator[CoreShare | _NoShare]:
    """Announce a CPU run under runs folder `root` while the block runs; yields the callback to pass to
    the trainer. A run on a GPU (`device` other than cpu, or auto with CUDA visible) shares nothing, nor
    does one with `enabled` False (torchrun ranks: torchrun sizes their threads)."""
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available()
                                 and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))
    if not (enabled and on_cpu and share_cores_enabled()):
        yield _NoShare()
        return
    share = CoreShare(root)
    share.start()
    try:
        yield share
    finally:
        share.stop()
