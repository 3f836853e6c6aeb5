"""Trainer callbacks of a run: keep the run folder current, stop early, stop on a signal.

Each is an object with some of the Trainer's events (`on_train_start`, `on_epoch_start`,
`on_batch_end`, `on_epoch_end`, `on_train_end`); `cvdemo.train.job.run_training` wires them in.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.checkpoint import checkpoint_bytes
from cvdemo.config import RunConfig
from cvdemo.train.groups import apply_freezing
from cvdemo.train.setup import Setup
from cvdemo.train.trainer import StopTraining, Trainer, sampled_batch

__all__ = ["RunWriter", "EarlyStop", "EarlyStopping", "CancelOnSignal", "CHECKPOINT_INTERVAL_S"]

# Checkpoints reach the disk (two files, each fsynced) at most once per this many seconds of training:
# with epochs of a second or two, writing both every epoch would cost more than the epochs themselves.
CHECKPOINT_INTERVAL_S = 10.0


class RunWriter:
    """Trainer callback that keeps the run folder current: metrics, status, last.pt and best.pt.

    On each epoch's end the metrics line is appended first, then the checkpoints replaced, so
    last.pt never claims an epoch that metrics.jsonl lacks. The rule for the checkpoints: each epoch's
    are snapshotted in memory at its end, and written when CHECKPOINT_INTERVAL_S seconds have passed
    since the last write, after the first and the final epoch, and whenever training ends early
    (cancelled, stopped early, diverged, failed), so a stopped run resumes from its last finished epoch;
    only a kill -9 may lose up to that many seconds of epochs, which a resume trains again.
    """

    def __init__(self, run_dir: Path, config: RunConfig, setup: Setup, history: list[dict[str, Any]]):
        self.run_dir, self.config, self.setup = Path(run_dir), config, setup
        self.metric = config.train.best_metric
        self.sign = 1.0 if self.metric == "val_top1" else -1.0  # larger is better after the sign
        scores = [self.sign * r[self.metric] for r in history if r.get(self.metric) == r.get(self.metric)]
        self.best = max(scores, default=-float("inf"))
        self.pending: dict[str, bytes] = {}  # "best.pt"/"last.pt" -> snapshot not yet on disk
        self.saved_at = -float("inf")  # time.monotonic() of the last write: the first epoch always writes

    def on_train_start(self, trainer: Trainer) -> None:
        runs.write_status(self.run_dir, "running", f"epoch {trainer.epoch + 1} of {trainer.epochs}",
                          epoch=trainer.epoch, epochs=trainer.epochs)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        apply_freezing(self.setup.groups, epoch + 1)

    def on_batch_end(self, trainer: Trainer, info: Any) -> None:
        """About ten points per epoch of training loss and learning rate, for live curves: at the batches
        where the trainer reads the loss (`sampled_batch`; on a GPU it does not read it at the others)."""
        if info.loss is not None and sampled_batch(info.batch, info.batches):
            runs.append_metrics(self.run_dir, {"kind": "step", "step": info.step,
                                               "epoch": info.epoch + (info.batch + 1) / info.batches,
                                               "loss": info.loss, "lr": info.lr, "time": time.time()})

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        runs.append_metrics(self.run_dir, {**record, "time": time.time()})
        meta = self.setup.checkpoint_meta(self.config)
        # setup.model, not trainer.model: a torch.compile wrapper would prefix every key.
        weights = {k: v.detach().cpu() for k, v in self.setup.model.state_dict().items()}
        score = self.sign * record.get(self.metric, float("nan"))
        if score == score and score > self.best:  # NaN-safe
            self.best = score
            self.pending["best.pt"] = checkpoint_bytes({**meta, "state_dict": weights, "epoch": trainer.epoch,
                                                        self.metric: record[self.metric]})
        self.pending["last.pt"] = checkpoint_bytes({
            **meta, "state_dict": weights, "epoch": trainer.epoch, "step": trainer.step,
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
            "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None})
        done = trainer.epoch >= trainer.epochs
        if done or time.monotonic() - self.saved_at >= CHECKPOINT_INTERVAL_S:
            self.write_checkpoints()
        runs.write_status(self.run_dir, "running",
                          "testing" if done else f"epoch {trainer.epoch + 1} of {trainer.epochs}",
                          epoch=trainer.epoch, epochs=trainer.epochs)


    def on_train_end(self, trainer: Trainer) -> None:
        self.write_checkpoints()  # training ended before its final epoch: keep the last finished one

    def write_checkpoints(self) -> None:
        """Write the pending snapshots (best.pt before last.pt, each atomically and fsynced)."""
        for name in ("best.pt", "last.pt"):
            data = self.pending.pop(name, None)
            if data is not None:
                runs.write_atomic(self.run_dir / name, data)
                self.saved_at = time.monotonic()


class EarlyStop(StopTraining):
    """The best-model metric stopped improving: the run ends normally and is tested."""


class EarlyStopping:
    """Trainer callback: stop when `metric` has not improved for `patience` epochs."""

    def __init__(self, metric: str, patience: int, history: list[dict[str, Any]]):
        self.metric, self.patience = metric, patience
        self.sign = 1.0 if metric == "val_top1" else -1.0
        self.best, self.best_epoch = -float("inf"), 0
        for r in history:
            self.update(r)

    def update(self, record: dict[str, Any]) -> None:
        score = self.sign * record.get(self.metric, float("nan"))
        if score == score and score > self.best:
            self.best, self.best_epoch = score, record["epoch"]

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.update(record)
        if record["epoch"] - self.best_epoch >= self.patience and trainer.epoch < trainer.epochs:
            raise EarlyStop(f"stopped early after epoch {record['epoch']}: {self.metric} has not improved "
                            f"for {self.patience} epochs (best at epoch {self.best_epoch})")


class CancelOnSignal:
    """Trainer callback: SIGTERM (a cancel button, `kill`) stops training after the current batch.

    The handler only sets a flag; the trainer stops at a safe point, so last.pt stays consistent.
    """

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True

    def on_train_start(self, trainer: Trainer) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handler)

    def on_batch_end(self, trainer: Trainer, info: Any) -> None:
        if self.requested:  # under torchrun SIGTERM reaches rank 0 only: the trainer tells the others
            trainer.request_stop("cancelled by a signal")

    def on_train_end(self, trainer: Trainer) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
