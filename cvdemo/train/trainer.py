"""The training loop, readable top to bottom, with events instead of flags.

Callbacks are plain objects with any of these methods; the trainer calls them in order:

    on_train_start(trainer)
    on_epoch_start(trainer, epoch)
    on_batch_end(trainer, info: BatchInfo)
    on_epoch_end(trainer, record: dict)     # the epoch's metrics, as written to metrics.jsonl
    on_train_end(trainer)

A callback raises `StopTraining` to end the run cleanly (a cancel button, early
stopping). A loss that stops being finite raises `Diverged`, which names the step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Cross-entropy this large means the logits have blown up even if still finite
# (e.g. Adam at lr=1e3): the run cannot recover, so call it diverged.
DIVERGED_LOSS = 1e4


class StopTraining(Exception):
    """Raised by a callback to stop training after the current batch; the run is `cancelled`."""


class Diverged(Exception):
    """The training loss became NaN, infinite or absurdly large."""

    def __init__(self, epoch: int, step: int, loss: float, lr: float):
        self.epoch, self.step, self.loss, self.lr = epoch, step, loss, lr
        what = "NaN" if math.isnan(loss) else "infinite" if math.isinf(loss) else f"{loss:.3g}"
        super().__init__(
            f"the loss became {what} at epoch {epoch + 1}, step {step} (learning rate {lr:.3g}); "
            f"the learning rate is probably too high: try {lr / 10:.3g} or lower")


@dataclass
class BatchInfo:
    epoch: int          # 0-based
    batch: int          # 0-based index within the epoch
    batches: int        # batches per epoch
    step: int           # optimisation steps so far, over the whole run
    loss: float | None  # this batch's training loss (None when not synchronised this step)
    lr: float
    images: int         # images in this batch


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> list[torch.Tensor]:
    """Number of samples whose label is among the k highest logits, for each k (capped at the class count)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top == labels[:, None]
    return [hits[:, : min(k, kmax)].any(dim=1).sum() for k in ks]


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, prepare: Callable[[torch.Tensor], torch.Tensor],
             device: torch.device) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (fractions in [0, 1]) over a loader of (uint8 images, labels)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros(2, device=device)
    n = 0
    for images, labels in loader:
        labels = labels.to(device, non_blocking=True)
        logits = model(prepare(images))
        loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum")
        correct += torch.stack(topk_correct(logits, labels, (1, 5)))
        n += labels.numel()
    model.train(was_training)
    if n == 0:
        return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan"), "n": 0}
    top1, top5 = (correct / n).tolist()
    return {"loss": loss_sum.item() / n, "top1": top1, "top5": top5, "n": n}


class Trainer:
    """Trains `model` for `epochs` epochs; `prepare` turns a uint8 batch into model input on `device`."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                 train_loader: Iterable, val_loader: Iterable | None, *,
                 prepare: Callable[[torch.Tensor], torch.Tensor], device: torch.device, epochs: int,
                 label_smoothing: float = 0.0, callbacks: Sequence[Any] = (), start_epoch: int = 0,
                 step: int = 0):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.prepare, self.device, self.epochs = prepare, device, epochs
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.callbacks = list(callbacks)
        self.epoch, self.step = start_epoch, step
        self.history: list[dict[str, Any]] = []
        # A host sync per step is free on the CPU; on a GPU it stalls the queue, so check less often.
        self.sync_every = 1 if device.type == "cpu" else 25

    def emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            handler = getattr(cb, event, None)
            if handler is not None:
                handler(self, *args)

    def set_train_mode(self) -> None:
        """Train mode, except batch norms whose weights are frozen keep their running statistics."""
        self.model.train()
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                m.eval()

    def fit(self) -> list[dict[str, Any]]:
        self.emit("on_train_start")
        try:
            while self.epoch < self.epochs:
                self.emit("on_epoch_start", self.epoch)
                record = {"kind": "epoch", "epoch": self.epoch + 1, **self.train_one_epoch()}
                if self.val_loader is not None:
                    val = evaluate(self.model, self.val_loader, self.prepare, self.device)
                    record.update({f"val_{k}": v for k, v in val.items() if k != "n"})
                self.history.append(record)
                self.epoch += 1
                self.emit("on_epoch_end", record)
        finally:
            self.emit("on_train_end")
        return self.history

    def train_one_epoch(self) -> dict[str, float]:
        self.set_train_mode()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        batches = len(self.train_loader)  # type: ignore[arg-type]
        lr_start = self.optimizer.param_groups[-1]["lr"]
        start = time.perf_counter()
        for i, (images, labels) in enumerate(self.train_loader):
            labels = labels.to(self.device, non_blocking=True)
            logits = self.model(self.prepare(images))
            loss = self.loss_fn(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.step += 1
            loss_sum += loss.detach() * labels.numel()
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += labels.numel()
            loss_value = None
            if self.step % self.sync_every == 0 or i == batches - 1:
                loss_value = loss.item()
                if not math.isfinite(loss_value) or loss_value > DIVERGED_LOSS:
                    raise Diverged(self.epoch, self.step, loss_value, self.optimizer.param_groups[-1]["lr"])
            self.emit("on_batch_end", BatchInfo(self.epoch, i, batches, self.step, loss_value,
                                                self.optimizer.param_groups[-1]["lr"], labels.numel()))
        seconds = time.perf_counter() - start
        return {"train_loss": loss_sum.item() / max(seen, 1), "train_top1": correct.item() / max(seen, 1),
                "lr": lr_start, "images_per_s": seen / max(seconds, 1e-9), "seconds": seconds}
