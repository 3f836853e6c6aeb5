"""Optimizers, learning-rate schedules and freezing, built from a TrainConfig.

Schedules step once per batch (not per epoch) so that warm-up and one-cycle are
smooth even over a few epochs; step/multistep still change at epoch boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from cvdemo.config import TrainConfig


def build_optimizer(params: Iterable, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW over `params` (tensors or param-group dicts)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(cfg.optimizer)  # config validation makes this unreachable


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the peak learning rate at optimisation step `step` (0-based)."""
    total = cfg.epochs * steps_per_epoch
    epoch = step // steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if cfg.schedule == "step":
        factor *= cfg.gamma ** (epoch // cfg.step_size)
    elif cfg.schedule == "multistep":
        factor *= cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    elif cfg.schedule == "cosine":
        progress = (step - warmup) / max(total - warmup, 1) if step >= warmup else 0.0
        factor *= 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-batch scheduler; one-cycle is torch's (it also cycles momentum), the rest a LambdaLR."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=cfg.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch))


def freeze(parameters: Iterable[nn.Parameter]) -> int:
    """Stop gradients for these parameters; returns how many values were frozen."""
    n = 0
    for p in parameters:
        p.requires_grad_(False)
        n += p.numel()
    return n
