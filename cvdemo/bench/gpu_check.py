"""`make gpu-check` (`python -m cvdemo.bench.gpu_check`): every GPU-only path of cvdemo, once, on a CUDA GPU.

No test on a CPU can show that the CUDA branches work; this command does, in one go, in about 5-8
minutes on one GPU. It prints one JSON line per check, {"check", "ok", "seconds", figures... or
"error"}, then a summary line, and exits 1 when any check failed (0 when all passed). Each check
runs in its own try block (most as a `cvdemo` subprocess with a timeout), so one failure hides
nothing else. Without a CUDA device it stops at once with one sentence and exit status 2: it
never skips a check silently.

The checks, on the built-in digits unless said otherwise:

    frozen-head       efficientnet_lite0 pretrained, --freeze backbone: head trained on cached features
    finetune-bf16     cifar_resnet, every layer trained, --precision bf16
    finetune-fp16     the same in fp16 (gradient scaler) with --channels-last
    compile           --compile (torch.compile)
    device-resident   the training set kept on the GPU and cropped/flipped there (loader + a run)
    lr-find           --lr-find, then training at its suggestion
    analysis          evaluate, embed and explain on a run, on CUDA
    out-of-memory     a real CUDA out-of-memory error inside validation -> the one-sentence message
    torchrun          2 processes (NCCL with 2+ GPUs; gloo sharing the GPU when there is only one)
    bench-*           `cvdemo bench NAME --device cuda` for train-throughput, data, inference and
                      frozen-features (the quick subset: all of `bench all` takes too long here;
                      classroom, explain and embed are mostly CPU-bound or covered by `analysis`)
    cifar10-fast      the recipe on CIFAR-10 (../shared/data/cifar10.zip, or $CVDEMO_CIFAR10_ZIP) to
                      its target, with its time; a missing zip fails the check and says where it looked
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NO_CUDA = ("gpu-check: no CUDA device is visible to PyTorch, so nothing was checked; run it on a machine "
           "with an NVIDIA GPU and a CUDA build of PyTorch.")
CIFAR10_TARGET = 0.935  # the recipe's expected ~94% test top-1, less half a point for the JPEG re-encoded copy
BUDGET_S = 470.0        # the whole command stays under 8 minutes: the last check gets what is left
CIFAR10_CANDIDATES = ("../shared/data/cifar10.zip", "shared/data/cifar10.zip", "data/cifar10.zip")
DEVICE = "cuda"  # what every check asks for (a developer may set "cpu" to dry-run a check's plumbing)


class CheckFailed(Exception):
    """A check ran but did not show what it should (the message says what it saw)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """TimeoutError if the block runs longer than `seconds` (an in-process check that hangs)."""
    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"timed out after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cvdemo(args: list[str], timeout: float, env: dict[str, str] | None = None,
           launcher: list[str] | None = None) -> dict[str, Any]:
    """Run `python -m cvdemo ARGS --json` (under `launcher`, e.g. torchrun, if given) and return the JSON
    object its last stdout line holds; CheckFailed with the last lines of its stderr when it fails."""
    command = [*(launcher or [sys.executable, "-m"]), "cvdemo", *args, "--json"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"`cvdemo {' '.join(args)[:120]}` timed out after {timeout:.0f} s") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise CheckFailed(f"`cvdemo {' '.join(args)[:120]}` exited {proc.returncode}: {tail[-600:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def train(out: Path, *flags: str, timeout: float = 120, **kwargs: Any) -> dict[str, Any]:
    """A `cvdemo train` run on CUDA into `out`; CheckFailed unless it completed. Returns its JSON plus
    the run's summary.json as "summary"."""
    result = cvdemo(["train", "--device", DEVICE, "--out", str(out), *flags], timeout, **kwargs)
    if result.get("status") != "completed":
        raise CheckFailed(f"the run ended {result.get('status')}: {result.get('message')}")
    summary_path = Path(result["run"]) / "summary.json"
    result["summary"] = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return result


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers of a training run worth printing."""
    test = result.get("test") or {}
    summary = result.get("summary", {})
    return {"test_top1": round(test.get("top1", float("nan")), 4), "epochs": result.get("epochs"),
            "run_seconds": result.get("seconds"), "device": summary.get("device")}


def learned(result: dict[str, Any], at_least: float = 0.3) -> None:
    """CheckFailed unless the run beat chance (0.1 on ten classes) clearly: it learned, so the path works."""
    top1 = (result.get("test") or {}).get("top1", 0.0)
    if not top1 >= at_least:
        raise CheckFailed(f"test top-1 {top1:.3f} is below {at_least}: the run did not learn")


# -- the checks: each returns its figures or raises ------------------------------------------------

def check_frozen_head(tmp: Path) -> dict[str, Any]:
    r = train(tmp, "--data", "digits", "--model", "efficientnet_lite0", "--pretrained", "--freeze", "backbone",
              "--image-size", "96", "--epochs", "3", "--batch-size", "64", "--lr", "0.01")
    if not r["summary"].get("cached_features"):
        raise CheckFailed("the head did not train on cached backbone features")
    learned(r)
    return figures(r)


def check_finetune_bf16(tmp: Path) -> dict[str, Any]:
    r = train(tmp, "--data", "digits", "--model", "cifar_resnet", "--image-size", "32", "--epochs", "3",
              "--precision", "bf16", "--optimizer", "sgd", "--lr", "0.05", "--schedule", "onecycle")
    learned(r)
    return figures(r)


def check_finetune_fp16(tmp: Path) -> dict[str, Any]:
    r = train(tmp, "--data", "digits", "--model", "cifar_resnet", "--image-size", "32", "--epochs", "3",
              "--precision", "fp16", "--channels-last", "--optimizer", "sgd", "--lr", "0.05",
              "--schedule", "onecycle")
    learned(r)
    return figures(r)


def check_compile(tmp: Path) -> dict[str, Any]:
    r = train(tmp, "--data", "digits", "--model", "lenet", "--image-size", "32", "--epochs", "3", "--compile",
              timeout=300)
    learned(r)
    return figures(r)


def check_device_resident(tmp: Path) -> dict[str, Any]:
    import torch

    from cvdemo.data import load_dataset, make_loader
    from cvdemo.data.loader import TensorBatches

    bundle = load_dataset("digits")
    loader = make_loader(bundle.train, batch_size=64, shuffle=True, augment="standard", resident="auto",
                         device=torch.device("cuda"))
    if not isinstance(loader, TensorBatches) or not loader.images.is_cuda:
        raise CheckFailed(f"resident auto did not keep the digits on the GPU ({type(loader).__name__})")
    x, y = next(iter(loader))
    if not (x.is_cuda and y.is_cuda):
        raise CheckFailed("a device-resident batch came back on the CPU")
    r = train(tmp, "--data", "digits", "--model", "lenet", "--image-size", "32", "--epochs", "3",
              "--augment", "standard", "--device-resident", "on")
    learned(r)
    return figures(r)


def check_lr_find(tmp: Path) -> dict[str, Any]:
    r = train(tmp, "--data", "digits", "--model", "lenet", "--image-size", "32", "--epochs", "2", "--lr-find")
    if not 0 < float(r.get("lr", 0)) < 10:
        raise CheckFailed(f"the learning-rate finder suggested {r.get('lr')}")
    return {**figures(r), "lr": r["lr"]}


def check_analysis(tmp: Path) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from cvdemo.data import load_dataset

    r = train(tmp, "--data", "digits", "--model", "lenet", "--image-size", "32", "--epochs", "2")
    run = r["run"]
    ev = cvdemo(["evaluate", run, "--device", DEVICE], 120)
    emb = cvdemo(["embed", run, "--device", DEVICE, "--out", str(tmp / "embed.csv")], 120)
    pixels = load_dataset("digits").test.images
    assert pixels is not None  # the digits are in memory
    image = pixels[0]  # uint8 (1, 8, 8)
    Image.fromarray(np.repeat(image.numpy()[0][..., None], 3, axis=2)).resize((64, 64)).save(tmp / "digit.png")
    explained = []
    for method in ("gradcam", "integrated_gradients"):
        cvdemo(["explain", run, str(tmp / "digit.png"), "--method", method, "--out", str(tmp / f"{method}.png")],
               120)
        if not (tmp / f"{method}.png").is_file():
            raise CheckFailed(f"explain --method {method} wrote no image")
        explained.append(method)
    return {"evaluate_top1": ev.get("top1"), "embed_dims": emb.get("dims"), "explained": explained}


def check_out_of_memory(tmp: Path) -> dict[str, Any]:
    """A real CUDA out-of-memory error (one allocation twice the GPU's memory) raised in validation."""
    import torch

    from cvdemo import runs
    from cvdemo.config import RunConfig
    from cvdemo.errors import CvdemoError
    from cvdemo.train import job, trainer

    def too_big(*args: Any, **kwargs: Any) -> dict[str, float]:
        _free, total = torch.cuda.mem_get_info()
        torch.empty(2 * total, dtype=torch.uint8, device="cuda")
        raise CheckFailed("allocating twice the GPU's memory did not fail")

    config = RunConfig().replace(model={"name": "lenet"}, data={"image_size": 32},
                                 train={"epochs": 1, "device": "cuda", "batch_size": 64})
    run_dir = runs.create_run(tmp, config)
    original = trainer.evaluate
    trainer.evaluate = too_big
    try:
        job.run_training(config, run_dir)
    except CvdemoError as e:
        message = str(e)
    else:
        raise CheckFailed("the run did not fail")
    finally:
        trainer.evaluate = original
    torch.cuda.empty_cache()
    status = runs.read_status(run_dir)
    one_sentence = message.count(". ") == 0 and "\n" not in message
    if "ran out of memory in validation" not in message or "--batch-size 32" not in message or not one_sentence:
        raise CheckFailed(f"unexpected message: {message}")
    if status.get("state") != "failed" or status.get("message") != message:
        raise CheckFailed(f"status.json says {status}")
    return {"message": message}


def check_torchrun(tmp: Path) -> dict[str, Any]:
    import torch

    gpus = torch.cuda.device_count()
    env = {} if gpus >= 2 else {"CVDEMO_DIST_BACKEND": "gloo"}  # NCCL refuses two ranks on one GPU
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m"]
    r = train(tmp, "--data", "digits", "--model", "lenet", "--image-size", "32", "--epochs", "3",
              timeout=180, env=env, launcher=launcher)
    learned(r)
    return {**figures(r), "backend": "nccl" if gpus >= 2 else "gloo (one GPU shared)", "gpus": gpus}


def bench_check(name: str, timeout: float) -> Callable[[Path], dict[str, Any]]:
    def check(tmp: Path) -> dict[str, Any]:
        result = cvdemo(["bench", name, "--device", DEVICE], timeout)
        figures = result.get(name, result)
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()
                if not isinstance(v, (dict, list))}
    return check


def find_cifar10() -> Path | None:
    named = os.environ.get("CVDEMO_CIFAR10_ZIP")
    for candidate in ([named] if named else []) + list(CIFAR10_CANDIDATES):
        if Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def check_cifar10_fast(tmp: Path, timeout: float = 300) -> dict[str, Any]:
    data = find_cifar10()
    if data is None:
        raise CheckFailed(f"CIFAR-10 is missing: no cifar10.zip at {', '.join(CIFAR10_CANDIDATES)} "
                          f"(from {Path.cwd()}); set CVDEMO_CIFAR10_ZIP to its path")
    start = time.perf_counter()
    r = train(tmp, "--recipe", "cifar10-fast", "--data", str(data), timeout=timeout)
    wall = time.perf_counter() - start
    top1 = r["test"]["top1"]
    out = {**figures(r), "wall_seconds": round(wall, 1), "target": CIFAR10_TARGET}
    if top1 < CIFAR10_TARGET:
        raise CheckFailed(f"test top-1 {top1:.4f} is below the target {CIFAR10_TARGET} "
                          f"({json.dumps(out)})")
    return out


CHECKS: list[tuple[str, Callable[[Path], dict[str, Any]], float]] = [
    # (name, check, limit in seconds for the in-process part; subprocesses carry their own timeouts)
    ("frozen-head", check_frozen_head, 200),
    ("finetune-bf16", check_finetune_bf16, 200),
    ("finetune-fp16-channels-last", check_finetune_fp16, 200),
    ("compile", check_compile, 320),
    ("device-resident", check_device_resident, 200),
    ("lr-find", check_lr_find, 200),
    ("analysis", check_analysis, 500),
    ("out-of-memory", check_out_of_memory, 120),
    ("torchrun-2-processes", check_torchrun, 200),
    ("bench-train-throughput", bench_check("train-throughput", 120), 140),
    ("bench-data", bench_check("data", 90), 110),
    ("bench-inference", bench_check("inference", 90), 110),
    ("bench-frozen-features", bench_check("frozen-features", 150), 170),
]


def run_check(name: str, check: Callable[[Path], dict[str, Any]], limit: float) -> dict[str, Any]:
    """One check as a JSON-ready line: ok and its figures, or not ok and why."""
    start = time.perf_counter()
    line: dict[str, Any] = {"check": name}
    try:
        with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as tmp, time_limit(limit):
            line.update(ok=True, **check(Path(tmp)))
    except Exception as e:  # noqa: BLE001 - every failure is reported, and the next check runs
        line.update(ok=False, error=f"{type(e).__name__}: {e}"[:1000])
    line["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(line, default=str), flush=True)
    return line


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    start = time.perf_counter()
    gpu = {"gpu": torch.cuda.get_device_name(0), "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
           "gpus": torch.cuda.device_count(), "torch": torch.__version__}
    print(json.dumps({"check": "environment", "ok": True, **gpu}), flush=True)
    lines = [run_check(name, check, limit) for name, check, limit in CHECKS]
    left = max(60.0, BUDGET_S - (time.perf_counter() - start))
    lines.append(run_check("cifar10-fast", lambda tmp: check_cifar10_fast(tmp, left - 10), left))
    failed = [line["check"] for line in lines if not line["ok"]]
    print(json.dumps({"summary": "gpu-check", "passed": len(lines) - len(failed), "failed": len(failed),
                      "failed_checks": failed, "seconds": round(time.perf_counter() - start, 1), **gpu}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
