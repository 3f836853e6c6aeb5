"""One rank of the two-rank gloo checks in tests/test_distributed.py, started by torchrun:

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py OUT CHECK [CHECK ...]

Each rank joins the process group as `cvdemo train` does, runs the named checks and writes what it saw to
OUT/rank<R>.json ({check: result}); the test compares the ranks. Tiny models and tensors: seconds each.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvdemo.config import RunConfig
from cvdemo.data.loader import TensorBatches
from cvdemo.train import distributed
from cvdemo.train.callbacks import CancelOnSignal
from cvdemo.train.trainer import Diverged, StopTraining, Trainer

CPU = torch.device("cpu")


def tiny_trainer(rank: int, *, callbacks: Sequence[Any] = (), accumulate: int = 1, epochs: int = 2,
                 prepare: Any = None, model: nn.Module | None = None, images: torch.Tensor | None = None,
                 dropout: bool = False) -> Trainer:
    """A Trainer over DDP(a small model) on 40 random samples, sharded: 20 per rank, batches of 5."""
    g = torch.Generator().manual_seed(0)
    if images is None:
        images = torch.randint(0, 256, (40, 1, 2, 2), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (len(images),), generator=g)
    torch.manual_seed(0)
    if model is None:
        model = nn.Sequential(nn.Flatten(), *([nn.Dropout(0.5)] if dropout else []), nn.Linear(4, 3))
    train = TensorBatches(images, labels, batch_size=5, shuffle=True, seed=1)
    model, train, _ = distributed.prepare(model, train, None, CPU)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    return Trainer(model, optimizer, None, train, None, prepare=prepare or (lambda x: x.float() / 255),
                   device=CPU, epochs=epochs, callbacks=callbacks, accumulate=accumulate, seed=5)


def outcome(trainer: Trainer) -> dict[str, Any]:
    """How fit() ended on this rank."""
    try:
        trainer.fit()
        return {"ended": "completed", "step": trainer.step}
    except Diverged as e:
        return {"ended": "diverged", "step": e.step, "epoch": e.epoch, "loss": repr(e.loss)}
    except StopTraining as e:
        return {"ended": "cancelled", "step": trainer.step, "message": str(e)}


def check_diverge(rank: int, out: Path) -> Any:
    """Rank 1's loss alone becomes NaN at its 3rd batch: both ranks stop there, as diverged."""
    calls = [0]

    def prepare(x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        x = x.float() / 255
        return x * float("nan") if rank == 1 and calls[0] == 3 else x

    return outcome(tiny_trainer(rank, prepare=prepare))


class SignalAt:
    """Sends SIGTERM to this process after batch `batch` (what a cancel button does to rank 0)."""

    def __init__(self, batch: int):
        self.batch = batch

    def on_batch_end(self, trainer: Trainer, info: Any) -> None:
        if info.batch == self.batch and info.epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def check_cancel(rank: int, out: Path) -> Any:
    """SIGTERM reaches rank 0 only: both ranks stop after the same step, as cancelled."""
    return outcome(tiny_trainer(rank, callbacks=[*([SignalAt(1)] if rank == 0 else []), CancelOnSignal()]))


def check_seeds(rank: int, out: Path) -> Any:
    """The model's initialisation and the data split from build_setup, and the random draws of each epoch."""
    from cvdemo.train.setup import build_setup

    setup = build_setup(RunConfig().replace(data={"source": "digits"}, model={"name": "lenet"}))
    init = [round(float(p.detach().double().sum()), 8) for p in setup.model.parameters()]
    split = [int(setup.bundle.train.labels.sum()), float(setup.bundle.train.images.double().mean()),
             int(setup.bundle.val.labels.sum()), len(setup.bundle.train)]

    class Draws:
        seen: list[list[float]] = []

        def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
            self.seen.append(torch.rand(3).tolist())

    draws = Draws()
    trainer = tiny_trainer(rank, callbacks=[draws], dropout=True)
    trainer.fit()
    weights = [round(float(p.detach().double().sum()), 10) for p in trainer.model.parameters()]
    return {"init": init, "split": split, "draws": draws.seen, "weights_after": weights}


def check_download_order(rank: int, out: Path) -> Any:
    """load_data with a stubbed download: local rank 0 downloads alone first, rank 1 only after it finished."""
    import cvdemo.train.setup as setup_module

    times: dict[str, float] = {}

    def slow_download(*args: Any, **kwargs: Any) -> str:
        times["start"] = time.time()
        if not (out / "done").exists():  # the "download": whoever finds no files fetches them
            time.sleep(0.5)
            (out / "done").write_text(str(rank))
            times["fetched"] = 1
        times["end"] = time.time()
        return "bundle"

    real = setup_module.load_dataset
    setup_module.load_dataset = slow_download  # type: ignore[assignment]
    try:
        setup_module.load_data(RunConfig().replace(data={"source": "cifar10"}))
    finally:
        setup_module.load_dataset = real
    return times


def check_alexnet_skip(rank: int, out: Path) -> Any:
    """alexnet_skip with nothing frozen: its fixed AlexNet features stay out of DDP, and DDP steps."""
    from cvdemo.models import create_model
    from cvdemo.train.groups import apply_freezing, plan_groups

    torch.manual_seed(0)
    model = create_model("alexnet_skip", 3, pretrained=False)
    config = RunConfig().replace(model={"name": "alexnet_skip", "pretrained": False, "freeze": "none"})
    groups = plan_groups(model, config)
    apply_freezing(groups, epoch=1)
    features = model.get_submodule("features")
    features_grad = [p.requires_grad for p in features.parameters()]
    others_grad = [p.requires_grad for n, p in model.named_parameters() if not n.startswith("features.")]
    images = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    trainer = tiny_trainer(rank, model=model, images=images, epochs=1)
    result = outcome(trainer)
    return {"features_requires_grad": features_grad, "others_requires_grad": others_grad, **result}


def check_no_sync(rank: int, out: Path) -> Any:
    """--accumulate 2: DDP all-reduces once per optimiser step, not once per batch; the ranks' weights agree."""
    trainer = tiny_trainer(rank, accumulate=2, epochs=1)
    assert trainer.ddp is not None
    reductions = [0]

    def counting_allreduce(state, bucket):  # no annotations: DDP checks them against its own types
        reductions[0] += 1
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        return allreduce_hook(state, bucket)

    trainer.ddp.register_comm_hook(None, counting_allreduce)
    trainer.fit()
    weights = [round(float(p.detach().double().sum()), 10) for p in trainer.model.parameters()]
    return {"batches": len(trainer.train_loader), "steps": trainer.step, "reductions": reductions[0],  # type: ignore[arg-type]
            "weights": weights}


def check_helpers(rank: int, out: Path) -> Any:
    """broadcast_float (the finder's rate from rank 0), all_agree, rank_seed, batch_warning."""
    return {"lr": distributed.broadcast_float(0.0123 if rank == 0 else None, CPU),
            "agree_mixed": distributed.all_agree(rank == 0, CPU), "agree_all": distributed.all_agree(True, CPU),
            "rank_seed": distributed.rank_seed(7),
            "warning_sgd": distributed.batch_warning(32, 0.1, "sgd"),
            "warning_adamw": distributed.batch_warning(32, 0.001, "adamw")}


def check_run(rank: int, out: Path) -> Any:
    """run_training under torchrun with --compile, --accumulate 2 (no_sync through the compiled wrapper) and resident
    auto: compile wraps the DDP model (not the other way round), rank 0's "fits" and rank 1's "does not fit" end as
    the same resident setting on both, and the global batch's learning-rate warning is recorded."""
    import warnings

    import cvdemo.train.job as job
    from cvdemo import runs

    compiled: list[str] = []
    resident: list[str] = []
    real_compile, real_loader = torch.compile, job.make_loader

    def spy_compile(model: nn.Module, **kwargs: Any) -> Any:
        compiled.append(type(model).__name__)
        return real_compile(model, backend="eager")  # no C++ toolchain needed; the same wrapping

    def spy_loader(*args: Any, **kwargs: Any) -> Any:
        resident.append(kwargs.get("resident", "?"))
        return real_loader(*args, **kwargs)

    def fits_on_rank_0(images: Any, augment: str, mode: str, device: Any) -> Any:
        return device if rank == 0 else None

    torch.compile = spy_compile  # type: ignore[assignment]
    job.make_loader = spy_loader
    job.resident_device = fits_on_rank_0  # type: ignore[assignment]
    config = RunConfig().replace(data={"source": "digits", "device_resident": "auto"}, model={"name": "lenet"},
                                 train={"epochs": 1, "compile": True, "device": "cpu", "accumulate": 2})
    try:
        with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = job.run_training(config, runs.create_run(scratch, config))
    finally:
        torch.compile, job.make_loader = real_compile, real_loader
    return {"compiled": compiled, "resident": resident, "status": summary["status"],
            "message": summary["message"], "warnings": summary.get("warnings", []),
            "warned": [str(w.message) for w in caught if "global batch" in str(w.message)]}


def check_fail(rank: int, out: Path) -> Any:
    """Rank 1 fails alone in the middle of an epoch (a bug, an out-of-memory error): it must not leave
    rank 0 waiting in the next all-reduce. Rank 1's exception leaves the process group (aborting it)."""

    class Boom:
        def on_batch_end(self, trainer: Trainer, info: Any) -> None:
            if rank == 1 and info.batch == 1:
                raise RuntimeError("rank 1 fails alone")

    try:
        # CancelOnSignal as in a real run: torchrun's SIGTERM alone does not stop a rank stuck in a collective
        return outcome(tiny_trainer(rank, callbacks=[Boom(), CancelOnSignal()], epochs=50))
    except Exception as e:
        (out / f"rank{rank}.json").write_text(json.dumps({"fail": {"ended": "error", "error": type(e).__name__,
                                                                   "time": time.time()}}))
        raise


CHECKS = {name.removeprefix("check_"): f for name, f in globals().items() if name.startswith("check_")}


def main(argv: list[str]) -> int:
    out, names = Path(argv[0]), argv[1:]
    launch = distributed.from_env()
    assert launch is not None, "start this under torchrun"
    results: dict[str, Any] = {}
    with distributed.process_group(launch, "cpu"):
        for name in names:
            results[name] = CHECKS[name](launch.rank, out)
            distributed.barrier()
    results["time"] = time.time()
    (out / f"rank{launch.rank}.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
