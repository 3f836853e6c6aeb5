"""Training dynamics: per layer group, every N optimisation steps, the gradient norm, the weight norm and
the size of the step relative to the weights, so a student sees gradients vanish in a deep plain
network and not in a residual one.

    recorder = Dynamics(run_dir, every=10)     # a Trainer callback: the groups are the optimizer's named ones
    ...
    {"kind": "dynamics", "step": 251, "epoch": 2.3,
     "groups": {"stem": {"grad_norm": 0.012, "weight_norm": 4.1, "update_ratio": 0.0009}, ...}}

Off the hot path: the optimizer's step pre- and post-hooks (torch.optim.Optimizer.register_step_pre_hook)
return at once on all but every N-th step; on that one they take a few norms and keep a copy of the
weights until the step is done. The trainer itself is unchanged: it clears the gradients right after the
step, so no `on_batch_end` callback could still read them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvdemo import runs

__all__ = ["Dynamics", "DYNAMICS_EVERY"]

DYNAMICS_EVERY = 10   # optimisation steps between two records (and the first step is always recorded)


def _norm(tensors: list[torch.Tensor]) -> float:
    """The L2 norm of the tensors taken together, as one float (one host sync)."""
    if not tensors:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors])))


class Dynamics:
    """Trainer callback recording per-group gradient norm, weight norm and update/weight ratio every
    `every` steps: into `run_dir`'s metrics.jsonl as kind "dynamics" (when given) and into `records`."""

    def __init__(self, run_dir: Path | None = None, every: int = DYNAMICS_EVERY):
        self.groups: list[tuple[str, list[nn.Parameter]]] = []
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.every = max(1, every)
        self.records: list[dict[str, Any]] = []
        self._steps = 0
        self._pending: dict[str, Any] | None = None
        self._before: dict[str, list[torch.Tensor]] = {}
        self._handles: list[Any] = []
        self._trainer: Any = None

    def on_train_start(self, trainer: Any) -> None:
        self._trainer = trainer
        self._steps = 0
        optimizer: torch.optim.Optimizer = trainer.optimizer
        # the layer groups, stem first and head last, as train.groups.optimizer_param_groups names them
        # (a group split into decayed and undecayed parameters comes back together here)
        named: dict[str, list[nn.Parameter]] = {}
        for i, group in enumerate(optimizer.param_groups):
            named.setdefault(str(group.get("name", f"group{i}")), []).extend(group["params"])
        self.groups = list(named.items())
        self._handles = [optimizer.register_step_pre_hook(self._pre), optimizer.register_step_post_hook(self._post)]

    def on_train_end(self, trainer: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _trained(self, params: list[nn.Parameter]) -> list[nn.Parameter]:
        return [p for p in params if p.requires_grad and p.grad is not None]

    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._steps += 1
        if (self._steps - 1) % self.every:
            return
        with torch.no_grad():
            groups: dict[str, dict[str, float | None]] = {}
            for name, params in self.groups:
                trained = self._trained(params)
                grad = _norm([p.grad for p in trained]) if trained else None  # type: ignore[misc]
                groups[name] = {"grad_norm": grad, "weight_norm": _norm([p.detach() for p in params])}
                self._before[name] = [p.detach().clone() for p in trained]
        trainer = self._trainer
        step = getattr(trainer, "step", self._steps - 1)
        loader: Any = getattr(trainer, "train_loader", None)
        per_epoch = -(-len(loader) // max(getattr(trainer, "accumulate", 1), 1)) if hasattr(loader, "__len__") else 0
        epoch = (step + 1) / per_epoch if per_epoch else None
        self._pending = {"kind": "dynamics", "step": step + 1, "epoch": epoch, "groups": groups}

    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._pending is None:
            return
        record, self._pending = self._pending, None
        with torch.no_grad():
            for name, params in self.groups:
                before = self._before.pop(name, [])
                trained = [p for p in params if p.requires_grad and p.grad is not None]
                stats = record["groups"][name]
                if not before or len(before) != len(trained):
                    stats["update_ratio"] = None
                    continue
                update = _norm([p.detach() - b for p, b in zip(trained, before)])
                weight = _norm(before)
                stats["update_ratio"] = update / weight if weight > 0 else None
        for stats in record["groups"].values():  # JSON has no NaN: a blown-up value is recorded as null
            for key, value in stats.items():
                if value is not None and not math.isfinite(value):
                    stats[key] = None
        self.records.append(record)
        if self.run_dir is not None:
            runs.append_metrics(self.run_dir, record)
