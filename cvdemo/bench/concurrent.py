"""`cvdemo bench concurrent`: several CPU runs side by side against the same runs one after the other.

A lesson or a sweep starts its runs together; on a CPU they should then finish no later than the same
runs queued one after the other (ratio >= 0.9: sequential wall time / side-by-side wall time). Each run
is a real `cvdemo train` process, so process start-up is in both figures alike. The side-by-side runs
are timed twice for two runs: with the cores shared (cvdemo.train.cpu_share, the default) and with
$CVDEMO_SHARE_CORES=0, every process sizing its thread pool for the whole machine (PyTorch's default),
to show what the sharing saves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

RUN = ["--data", "digits", "--model", "lenet_custom", "--epochs", "2", "--seed", "0"]


def _train(root: Path, share: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CVDEMO_SHARE_CORES": "1" if share else "0"}
    return subprocess.Popen([sys.executable, "-m", "cvdemo", "train", *RUN, "--out", str(root), "--json"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wall(root: Path, runs: int, side_by_side: bool, share: bool = True) -> float:
    start = time.perf_counter()
    if side_by_side:
        procs = [_train(root, share) for _ in range(runs)]
    else:
        procs = []
        for _ in range(runs):
            procs.append(_train(root, share))
            procs[-1].wait()
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"a benchmark run failed (exit codes {codes}); run `cvdemo train {' '.join(RUN)}`")
    return time.perf_counter() - start


def bench_concurrent(device: torch.device, counts: tuple[int, ...] = (2, 3)) -> dict[str, Any]:
    """Side by side vs one after the other for 2 and 3 digits runs on the CPU; `ratio` is the worst count's."""
    if device.type != "cpu":
        return {"ratio": float("nan"), "skipped": f"CPU runs sharing cores; this run is on {device}"}
    out: dict[str, Any] = {"run": " ".join(RUN), "cores": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="cvdemo-bench-concurrent-") as tmp:
        root = Path(tmp)
        _wall(root, 1, side_by_side=False)  # warm the disk cache: the first import of torch is slower
        for n in counts:
            sequential = _wall(root, n, side_by_side=False)
            together = _wall(root, n, side_by_side=True)
            out[f"runs_{n}"] = {"sequential_s": round(sequential, 2), "side_by_side_s": round(together, 2),
                                "ratio": sequential / together}
        unshared = _wall(root, counts[0], side_by_side=True, share=False)
        first = out[f"runs_{counts[0]}"]
        first["side_by_side_unshared_s"] = round(unshared, 2)
        first["ratio_unshared"] = first["sequential_s"] / unshared
    out["ratio"] = min(out[f"runs_{n}"]["ratio"] for n in counts)
    return out
