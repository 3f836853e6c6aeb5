"""Learning-rate finder (report 000): an exponential sweep of the learning rate over a few batches.

Train with the rate growing from `start_lr` to `end_lr`, record the smoothed loss,
stop once it explodes, and suggest the rate where the loss falls fastest (steepest
descent of the smoothed curve against log-lr). The "minimum ÷ 10" rule is reported
beside it. The model and optimizer are restored exactly as they were afterwards.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from cvdemo.progress import phase


@dataclass
class LRFindResult:
    lrs: list[float]           # learning rate at each step (of the last parameter group, the head)
    losses: list[float]        # smoothed training loss at each step
    raw_losses: list[float]    # unsmoothed
    suggested_lr: float        # steepest descent of the smoothed loss
    min_loss_lr: float         # learning rate at the smoothed minimum
    stopped_early: bool        # the loss exploded before end_lr

    @property
    def min_div10_lr(self) -> float:
        return self.min_loss_lr / 10

    def to_dict(self) -> dict:
        return {**asdict(self), "min_div10_lr": self.min_div10_lr}


def lr_find(model: nn.Module, optimizer: torch.optim.Optimizer, train_loader: Iterable,
            prepare: Callable[[torch.Tensor], torch.Tensor], device: torch.device, *,
            start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, beta: float = 0.9,
            explode: float = 4.0, loss_fn: nn.Module | None = None) -> LRFindResult:
    """Sweep the learning rate exponentially over `steps` batches; see the module docstring.

    Parameter groups keep their ratios (discriminative learning rates): the head's group follows the
    sweep and the others are scaled by their configured fraction of it.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError("start_lr must be positive and below end_lr")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    head_lr = optimizer.param_groups[-1]["lr"]
    ratios = [g["lr"] / head_lr for g in optimizer.param_groups]
    growth = (end_lr / start_lr) ** (1 / max(steps - 1, 1))
    lrs, losses, raw = [], [], []
    avg, best, stopped = 0.0, math.inf, False
    model.train()
    meter = phase("lr_find", "learning-rate finder", steps, unit="batches")
    try:
        step = 0
        while step < steps and not stopped:
            batches = 0
            for images, labels in train_loader:
                batches += 1
                lr = start_lr * growth**step
                for g, r in zip(optimizer.param_groups, ratios):
                    g["lr"] = lr * r
                loss = loss_fn(model(prepare(images)), labels.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                value = loss.item()
                step += 1
                meter.add(1)
                if not math.isfinite(value):
                    stopped = True
                    break
                avg = beta * avg + (1 - beta) * value
                smoothed = avg / (1 - beta**step)  # bias-corrected exponential moving average
                lrs.append(lr)
                raw.append(value)
                losses.append(smoothed)
                best = min(best, smoothed)
                if smoothed > explode * best and step > 10:
                    stopped = True
                    break
                if step >= steps:
                    break
            if batches == 0:
                raise ValueError("the training loader is empty")
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
    meter.finish()
    if len(losses) < 3:
        raise ValueError("the loss exploded within the first steps; lower start_lr")
    return LRFindResult(lrs, losses, raw, suggest(lrs, losses), lrs[losses.index(min(losses))], stopped)


def suggest(lrs: list[float], losses: list[float]) -> float:
    """Learning rate of steepest descent of loss against log(lr), looked for before the minimum."""
    end = losses.index(min(losses)) + 1
    skip = min(len(losses) // 10, max(end - 2, 0))  # the first few points are noise around the start value
    logs = [math.log(lr) for lr in lrs]
    best_i, best_slope = skip, math.inf
    for i in range(max(skip, 1), max(end, 2)):
        if i + 1 >= len(losses):
            break
        slope = (losses[i + 1] - losses[i - 1]) / (logs[i + 1] - logs[i - 1])
        if slope < best_slope:
            best_i, best_slope = i, slope
    return lrs[best_i]
