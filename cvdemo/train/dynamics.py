"""Training dynamics: per layer group, every N optimisation steps, the gradient norm, the weight norm, the
size of the step relative to the weights and the share of dead ReLU units, so a student sees gradients
vanish in a deep plain network and not in a residual one.

    recorder = Dynamics(run_dir, every=10)     # a Trainer callback: the groups are the optimizer's named ones
    ...
    {"kind": "dynamics", "step": 251, "epoch": 2.3,
     "groups": {"stem": {"grad_norm": 0.012, "weight_norm": 4.1, "update_ratio": 0.0009, "dead_relu": 0.06},
                ..., "head": {..., "dead_relu": null}}}

Off the hot path: the optimizer's step pre- and post-hooks (torch.optim.Optimizer.register_step_pre_hook)
return at once on all but every N-th step; on that one they take a few norms and keep a copy of the
weights until the step is done. The trainer itself is unchanged: it clears the gradients right after the
step, so no `on_batch_end` callback could still read them.

Dead ReLUs: the first training batch (at most FIXED_BATCH images, as the model received it) is kept, and on
a recorded step, after the update, the model runs on it once more in eval mode without gradients, with
forward hooks on its nn.ReLU / nn.ReLU6 modules for that pass only. A unit (a channel of a feature map, a
feature of a vector) is dead when its output is exactly 0 for every image of the batch; a group's value is
its dead units over all its ReLU units (None for a group without ReLU modules). Eval mode and no_grad leave
training alone: no batch-norm statistics move, no dropout draws a random number, no gradient is touched.

All of a record's figures come to the host together, in one transfer (one GPU sync per record).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvdemo import runs

__all__ = ["Dynamics", "DYNAMICS_EVERY", "FIXED_BATCH", "relu_groups"]

DYNAMICS_EVERY = 10   # optimisation steps between two records (and the first step is always recorded)
FIXED_BATCH = 32      # images of the first training batch kept for the dead-ReLU pass (a forward of 32: ~2% of
                      # the steps between two records of a 64-image batch; `cvdemo bench dynamics` measures it)
RELUS = (nn.ReLU, nn.ReLU6)


def _norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of the tensors taken together, as a 0-d float tensor (no host sync)."""
    if not tensors:
        return torch.zeros(())
    if len({(t.device, t.dtype) for t in tensors}) == 1:
        parts = list(torch._foreach_norm(tensors))  # one fused call, as nn.utils.clip_grad_norm_ uses
    else:
        parts = [torch.linalg.vector_norm(t) for t in tensors]
    return torch.linalg.vector_norm(torch.stack([p.float() for p in parts]))


def relu_groups(model: nn.Module, groups: list[tuple[str, list[nn.Parameter]]]) -> list[tuple[nn.Module, str]]:
    """Each nn.ReLU / nn.ReLU6 module of `model` with the layer group it belongs to: the group of the last
    module with parameters registered before it (conv, bn, relu: the conv's group), or the first group for
    a ReLU that comes before any parameters."""
    owner = {id(p): name for name, params in groups for p in params}
    current = groups[0][0] if groups else ""
    found: list[tuple[nn.Module, str]] = []
    seen: set[int] = set()
    for module in model.modules():
        own = [owner[id(p)] for p in module.parameters(recurse=False) if id(p) in owner]
        if own:
            current = own[-1]
        if isinstance(module, RELUS) and id(module) not in seen:
            seen.add(id(module))
            found.append((module, current))
    return found


class Dynamics:
    """Trainer callback recording per-group gradient norm, weight norm, update/weight ratio and dead-ReLU
    fraction every `every` steps: into `run_dir`'s metrics.jsonl as kind "dynamics" (when given) and into
    `records`. `dead_relu=False` leaves the dead-ReLU pass out (its values are then None)."""

    def __init__(self, run_dir: Path | None = None, every: int = DYNAMICS_EVERY, dead_relu: bool = True):
        self.groups: list[tuple[str, list[nn.Parameter]]] = []
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.every = max(1, every)
        self.dead_relu = dead_relu
        self.records: list[dict[str, Any]] = []
        self.fixed: torch.Tensor | None = None    # the batch the dead-ReLU pass runs on
        self._steps = 0
        self._pending: dict[str, Any] | None = None
        self._before: dict[str, list[torch.Tensor]] = {}
        self._handles: list[Any] = []
        self._relus: list[tuple[nn.Module, str]] = []
        self._keeper: Any = None   # the forward pre-hook that keeps the first batch, until it has kept it
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
        model = getattr(trainer, "model", None)
        self._relus = relu_groups(model, self.groups) if self.dead_relu and isinstance(model, nn.Module) else []
        self._keeper = (model.register_forward_pre_hook(self._keep_batch)  # type: ignore[union-attr]
                        if self._relus and self.fixed is None else None)

    def on_train_end(self, trainer: Any) -> None:
        for handle in [*self._handles, *([self._keeper] if self._keeper is not None else [])]:
            handle.remove()
        self._handles, self._keeper = [], None

    def _keep_batch(self, module: nn.Module, args: Any) -> None:
        """The first training batch the model sees (its first FIXED_BATCH images): the dead-ReLU pass's."""
        if self.fixed is None and module.training and args and isinstance(args[0], torch.Tensor):
            self.fixed = args[0][:FIXED_BATCH].detach().clone()

    def _trained(self, params: list[nn.Parameter]) -> list[nn.Parameter]:
        return [p for p in params if p.requires_grad and p.grad is not None]

    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._steps += 1
        if (self._steps - 1) % self.every:
            return
        with torch.no_grad():
            groups: dict[str, dict[str, Any]] = {}
            for name, params in self.groups:
                trained = self._trained(params)
                groups[name] = {"grad_norm": _norms([p.grad for p in trained]) if trained else None,  # type: ignore[misc]
                                "weight_norm": _norms([p.detach() for p in params])}
                self._before[name] = [p.detach().clone() for p in trained]
        trainer = self._trainer
        step = getattr(trainer, "step", self._steps - 1)
        loader: Any = getattr(trainer, "train_loader", None)
        per_epoch = -(-len(loader) // max(getattr(trainer, "accumulate", 1), 1)) if hasattr(loader, "__len__") else 0
        epoch = (step + 1) / per_epoch if per_epoch else None
        self._pending = {"kind": "dynamics", "step": step + 1, "epoch": epoch, "groups": groups}

    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._keeper is not None and self.fixed is not None:
            self._keeper.remove()
            self._keeper = None
        if self._pending is None:
            return
        record, self._pending = self._pending, None
        with torch.no_grad():
            for name, params in self.groups:
                before = self._before.pop(name, [])
                trained = self._trained(params)
                stats = record["groups"][name]
                if not before or len(before) != len(trained):
                    stats["update_ratio"] = None
                    continue
                update = _norms([p.detach() - b for p, b in zip(trained, before)])
                stats["update_ratio"] = update / _norms(before)
            dead = self._dead_units()
            for name, stats in record["groups"].items():
                stats["dead_relu"] = dead.get(name)
        self._to_host(record["groups"])
        self.records.append(record)
        if self.run_dir is not None:
            runs.append_metrics(self.run_dir, record)

    def _dead_units(self) -> dict[str, torch.Tensor]:
        """Per group with ReLU modules, its share of dead units on the fixed batch (0-d tensors)."""
        model = getattr(self._trainer, "model", None)
        if not self._relus or self.fixed is None or not isinstance(model, nn.Module):
            return {}
        counts: dict[str, list[torch.Tensor]] = {}

        def hook(group: str) -> Any:
            def count(module: nn.Module, args: Any, out: Any) -> None:
                if isinstance(out, torch.Tensor) and out.ndim >= 2:
                    # a unit: a channel (all positions) of a feature map, or a feature of a vector
                    alive = (out != 0).transpose(0, 1).reshape(out.shape[1], -1).any(dim=1)
                    dead, total = counts.setdefault(group, [torch.zeros((), device=out.device),
                                                            torch.zeros((), device=out.device)])
                    dead += (~alive).sum()
                    total += alive.numel()
            return count

        modes = [(m, m.training) for m in model.modules()]
        handles = [module.register_forward_hook(hook(group)) for module, group in self._relus]
        amp = getattr(self._trainer, "amp_dtype", None)
        try:
            model.eval()
            with torch.autocast(self.fixed.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                model(self.fixed)
        finally:
            for handle in handles:
                handle.remove()
            for m, training in modes:
                m.training = training
        return {group: dead / total for group, (dead, total) in counts.items() if total > 0}

    @staticmethod
    def _to_host(groups: dict[str, dict[str, Any]]) -> None:
        """Every tensor figure of the record as a float, fetched in one transfer; JSON has no NaN, so a
        value that blew up (or a ratio to zero weights) is recorded as null."""
        slots = [(stats, key) for stats in groups.values() for key, value in stats.items()
                 if isinstance(value, torch.Tensor)]
        if not slots:
            return
        device = max((stats[key].device for stats, key in slots), key=lambda d: d.type != "cpu")  # the GPU's, if any
        values = torch.stack([stats[key].detach().float().reshape(()).to(device) for stats, key in slots])
        for (stats, key), value in zip(slots, values.tolist()):
            stats[key] = value if math.isfinite(value) else None
