"""The training loop, readable top to bottom, with events instead of flags.

Callbacks are plain objects with any of these methods; the trainer calls them in order:

    on_train_start(trainer)
    on_epoch_start(trainer, epoch)
    on_batch_end(trainer, info: BatchInfo)
    on_epoch_end(trainer, record: dict)     # the epoch's metrics, as written to metrics.jsonl
    on_train_end(trainer)

A callback raises `StopTraining` to end the run cleanly (a cancel button, early
stopping), or calls `trainer.request_stop(reason)` for a stop that only its own rank knows
of (under torchrun all ranks then stop together). A loss that stops being finite raises
`Diverged`, which names the step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cvdemo.device import memory_phase
from cvdemo.progress import Phase, phase
from cvdemo.train import distributed

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
    """Number of samples whose label is among the k highest logits, for each k, by the rule the Evaluate
    page's scikit-learn figures use (`cvdemo.evaluate.topk_accuracy`), so a run's summary and its evaluation
    agree even when scores tie (a run that did not learn often gives several classes the same logit):
    top-1 is the argmax (ties to the lowest index, like the confusion matrix); for k > 1 a class scoring
    the same as the label counts as above it when its index is higher (scikit-learn's top_k_accuracy_score)."""
    true = logits.gather(1, labels[:, None])
    index = torch.arange(logits.shape[1], device=logits.device)
    above = (logits > true) | ((logits == true) & (index[None, :] > labels[:, None]))
    rank = above.sum(dim=1)
    rank = torch.where(torch.isfinite(true[:, 0]), rank, logits.shape[1] - 1)  # a NaN label score: last place
    return [(logits.argmax(1) == labels).sum() if k == 1 else (rank < k).sum() for k in ks]


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, prepare: Callable[[torch.Tensor], torch.Tensor],
             device: torch.device, amp_dtype: torch.dtype | None = None, reduce: bool = False,
             meter: Phase | None = None) -> dict[str, float]:
    """Mean cross-entropy, top-1/2/5 accuracy and macro-F1 (fractions in [0, 1]) over (uint8 images, labels).

    `reduce=True` under torchrun: the loader yields this rank's share, and the sums and counts of all
    ranks are added up before dividing (every rank gets the same result). `meter`: told of each batch's images.
    """
    model = distributed.unwrap(model)  # no DDP collectives while ranks see different numbers of batches
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros(3, device=device)
    confusion = None
    n = k = 0
    for images, labels in loader:
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(prepare(images)).float()
        loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum")
        correct += torch.stack(topk_correct(logits, labels, (1, 2, 5)))
        k = logits.shape[1]
        if confusion is None:
            confusion = torch.zeros(k * k, device=device, dtype=torch.long)
        # scatter_add_, not bincount: CUDA's bincount reads its input's max on the host, a sync per batch
        cells = labels * k + logits.argmax(1)
        confusion.scatter_add_(0, cells, torch.ones_like(cells))
        n += labels.numel()
        if meter is not None:
            meter.add(labels.numel())
    model.train(was_training)
    if reduce and distributed.active():
        k = distributed.max_int(k, device)  # a rank whose share was empty learns the class count
        if confusion is None and k:
            confusion = torch.zeros(k * k, device=device, dtype=torch.long)
        totals = distributed.reduce_tensor_(torch.cat([loss_sum.view(1), correct, loss_sum.new_tensor([n])]).double())
        loss_sum, correct, n = totals[0], totals[1:4], int(totals[4].item())
        if confusion is not None:
            distributed.reduce_tensor_(confusion)
    if n == 0 or confusion is None:  # (n > 0 means some batch made the confusion matrix)
        nan = float("nan")
        return {"loss": nan, "top1": nan, "top2": nan, "top5": nan, "macro_f1": nan, "n": 0}
    top1, top2, top5 = (correct / n).tolist()
    return {"loss": loss_sum.item() / n, "top1": top1, "top2": top2, "top5": top5,
            "macro_f1": macro_f1(confusion.view(k, k)), "n": n}


def macro_f1(confusion: torch.Tensor) -> float:
    """Unweighted mean F1 over the classes that occur (as true or predicted) in a (true, predicted) count matrix."""
    c = confusion.double()
    tp = c.diag()
    support, predicted = c.sum(1), c.sum(0)
    present = (support + predicted) > 0
    f1 = 2 * tp / (support + predicted).clamp(min=1)
    return f1[present].mean().item()


def mix_batch(x: torch.Tensor, y: torch.Tensor, mixup: float, cutmix: float
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mixup (blend two images) or cutmix (paste a box of one into the other), chosen per batch.

    x: float (B, C, H, W) model input; returns (mixed x, labels a, labels b, lam) where the loss is
    lam * CE(a) + (1 - lam) * CE(b). Randomness comes from torch's global generator (seeded per epoch).
    """
    use_cutmix = cutmix > 0 and (mixup <= 0 or torch.rand(()).item() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], device=x.device)  # drawn where x is: no host-to-GPU copy (a sync) per step
    if not use_cutmix:
        return x * lam + x[perm] * (1 - lam), y, y[perm], lam
    h, w = x.shape[-2:]
    cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    x = x.clone()
    x[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
    lam = 1 - (bottom - top) * (right - left) / (h * w)  # the pasted area decides the label weight
    return x, y, y[perm], lam


class Trainer:
    """Trains `model` for `epochs` epochs; `prepare` turns a uint8 batch into model input on `device`.

    Options beyond the plain loop: `mixup`/`cutmix` alphas, `accumulate` batches per optimiser step,
    `clip_grad_norm`, `amp_dtype` (bf16/fp16 autocast; fp16 uses a gradient scaler) and `seed`, which
    reseeds torch's generator at the start of every epoch so a resumed run repeats exactly.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                 train_loader: Iterable, val_loader: Iterable | None, *,
                 prepare: Callable[[torch.Tensor], torch.Tensor], device: torch.device, epochs: int,
                 label_smoothing: float = 0.0, callbacks: Sequence[Any] = (), start_epoch: int = 0,
                 step: int = 0, seed: int = 0, mixup: float = 0.0, cutmix: float = 0.0, accumulate: int = 1,
                 clip_grad_norm: float | None = None, amp_dtype: torch.dtype | None = None,
                 head_only: bool = False):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.prepare, self.device, self.epochs = prepare, device, epochs
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.callbacks = list(callbacks)
        self.epoch, self.step = start_epoch, step
        self.seed, self.mixup, self.cutmix = seed, mixup, cutmix
        self.accumulate, self.clip_grad_norm, self.amp_dtype = accumulate, clip_grad_norm, amp_dtype
        # the model is the head alone, fed the frozen backbone's stored features: an epoch's images/s is then
        # not the network's speed, and its record says so ("head_only")
        self.head_only = head_only
        self.scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
        self.history: list[dict[str, Any]] = []
        # A host sync per step is free on the CPU; on a GPU it stalls the queue, so check less often
        # (every sync_every steps, and at the batches live curves show: `sampled_batch`).
        self.sync_every = 1 if device.type == "cpu" else 25
        # Under torchrun: the DDP wrapper (its no_sync skips the all-reduce of non-final accumulation steps),
        # and stop requests that wait for the next sync point, where all ranks agree on them (`stop_at_sync`).
        self.distributed = distributed.active()
        self.ddp = distributed.ddp_module(model) if self.distributed else None
        self.stop_reason: str | None = None

    def emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            handler = getattr(cb, event, None)
            if handler is not None:
                handler(self, *args)

    def request_stop(self, reason: str) -> None:
        """Stop after the current batch (StopTraining: the run is `cancelled`). A callback calls this rather than
        raising StopTraining itself: under torchrun the stop then waits for the next sync point, where every rank
        learns of it and stops after the same step; in a single process it raises at once."""
        if not self.distributed:
            raise StopTraining(reason)
        self.stop_reason = self.stop_reason or reason

    def set_train_mode(self) -> None:
        """Train mode, except modules whose weights are all frozen run as at inference: their batch norms
        keep their running statistics and their dropout / stochastic depth is off."""
        self.model.train()
        for m in self.model.modules():
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                m.eval()

    def fit(self) -> list[dict[str, Any]]:
        self.emit("on_train_start")
        try:
            while self.epoch < self.epochs:
                # epoch-exact randomness, for resume; under torchrun each rank its own (dropout, mixup)
                torch.manual_seed(distributed.rank_seed(self.seed * 100_003 + self.epoch))
                set_loader_epoch(self.train_loader, self.epoch)
                self.emit("on_epoch_start", self.epoch)
                record = {"kind": "epoch", "epoch": self.epoch + 1, **self.train_one_epoch()}
                if self.val_loader is not None:
                    # reported only once it has lasted 2 s: most validations are over before anyone looks
                    with memory_phase("validation"), phase("validation", f"validating epoch {self.epoch + 1}",
                                                           loader_images(self.val_loader), after=2.0) as meter:
                        val = evaluate(self.model, self.val_loader, self.prepare, self.device, self.amp_dtype,
                                       reduce=True, meter=meter)
                    record.update({f"val_{k}": v for k, v in val.items() if k != "n"})
                self.history.append(record)
                self.epoch += 1
                self.emit("on_epoch_end", record)
        finally:
            self.emit("on_train_end")
        return self.history

    def optimizer_step(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1

    def train_one_epoch(self) -> dict[str, float]:
        self.set_train_mode()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        batches = len(self.train_loader)  # type: ignore[arg-type]
        lr_start = self.optimizer.param_groups[-1]["lr"]
        mixing = self.mixup > 0 or self.cutmix > 0
        self.optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        for i, (images, labels) in enumerate(self.train_loader):
            labels = labels.to(self.device, non_blocking=True)
            x = self.prepare(images)
            stepped = (i + 1) % self.accumulate == 0 or i == batches - 1
            # DDP: a micro-step that does not step keeps its gradients local (added up in .grad); the final
            # one all-reduces the sum. Forward and backward both inside no_sync, as DDP requires.
            with (self.ddp.no_sync() if self.ddp is not None and not stepped else contextlib.nullcontext()):
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    if mixing:
                        x, labels_a, labels_b, lam = mix_batch(x, labels, self.mixup, self.cutmix)
                        logits = self.model(x)
                        loss = lam * self.loss_fn(logits, labels_a) + (1 - lam) * self.loss_fn(logits, labels_b)
                    else:
                        logits = self.model(x)
                        loss = self.loss_fn(logits, labels)
                scaled = loss / self.accumulate
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            if stepped:
                self.optimizer_step()
            loss_sum += loss.detach() * labels.numel()
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += labels.numel()
            loss_value = None
            if (stepped and self.step % self.sync_every == 0) or sampled_batch(i, batches):
                if self.distributed:
                    loss_value = self.stop_at_sync(loss)
                else:
                    loss_value = loss.item()
                    if not math.isfinite(loss_value) or loss_value > DIVERGED_LOSS:
                        raise Diverged(self.epoch, self.step, loss_value, self.optimizer.param_groups[-1]["lr"])
            self.emit("on_batch_end", BatchInfo(self.epoch, i, batches, self.step, loss_value,
                                                self.optimizer.param_groups[-1]["lr"], labels.numel()))
        seconds = time.perf_counter() - start
        # One host sync per epoch; under torchrun the sums of all ranks (each saw its share of the epoch).
        loss_total, correct_total, seen_total = distributed.reduce_sums([loss_sum, correct, seen], self.device)
        record = {"train_loss": loss_total / max(seen_total, 1), "train_top1": correct_total / max(seen_total, 1),
                  "lr": lr_start, "images_per_s": seen_total / max(seconds, 1e-9), "seconds": seconds}
        if distributed.active():
            record["rank_samples"] = distributed.per_rank(seen, self.device)
        if self.head_only:
            record["head_only"] = True
        return record


    def stop_at_sync(self, loss: torch.Tensor) -> float:
        """Under torchrun, at a sync point (the same batches on every rank): this rank's loss, after all ranks
        agreed whether to stop. Any rank's loss diverging raises Diverged, and any rank's stop request
        StopTraining, on every rank alike, so none is left waiting in the next step's all-reduce."""
        own, worst, stop = distributed.agree_to_stop(loss, self.stop_reason is not None)
        if not math.isfinite(worst) or worst > DIVERGED_LOSS:
            raise Diverged(self.epoch, self.step, worst, self.optimizer.param_groups[-1]["lr"])
        if stop:
            raise StopTraining(self.stop_reason or "cancelled on another rank")
        return own


def sampled_batch(batch: int, batches: int) -> bool:
    """True for the about ten batches per epoch (and always the last) whose loss the live curves show: the
    trainer reads the loss there (a host sync on a GPU) and the run writer records it (RunWriter.on_batch_end)."""
    every = max(1, batches // 10)
    return (batch + 1) % every == 0 or batch == batches - 1


def loader_images(loader: Any) -> int:
    """How many images one pass over `loader` yields (this rank's share under torchrun), without iterating."""
    count = getattr(loader, "_count", None)  # TensorBatches (a sharded one counts its share)
    if callable(count):
        return int(count())
    sampler = getattr(loader, "sampler", None)  # SampleLoader: its SeededSampler, sharded too
    if sampler is not None and hasattr(sampler, "__len__"):
        return len(sampler)
    dataset = getattr(loader, "dataset", None)
    return len(dataset) if dataset is not None else len(loader) * int(getattr(loader, "batch_size", 1) or 1)


def set_loader_epoch(loader: Any, epoch: int) -> None:
    """Tell a loader which epoch comes next, so its shuffle order matches an uninterrupted run."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
