"""Layer groups as training sees them: a learning rate each, and when each starts to train.

The registry splits every model into groups from stem to head (`ModelSpec.groups`).
Here they get:
- a learning-rate multiplier: explicit (`group_lr_mult`, report 000 used
  0.1, 0.125, 0.167, 0.25, 0.5, 1 from stem to head) or a factor per group going
  down from the head (`lr_decay`);
- a first training epoch: frozen groups (`freeze backbone` or `until:GROUP`) start
  only when gradual unfreezing (`unfreeze_at`) reaches them, nearest the head first.

Freezing is a function of the epoch, so a resumed run freezes exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError
from cvdemo.models import get_spec, group_parameters


@dataclass
class LayerGroup:
    name: str
    params: list[nn.Parameter]
    lr_mult: float
    trains_from: int | None   # first epoch (1-based) in which it trains; None = frozen for the whole run
    # ids of parameters the model itself created frozen (alexnet_skip's detached AlexNet features): they never
    # train, whatever the plan, so freezing leaves them alone (DDP would wait for their gradients forever)
    fixed: frozenset[int] = frozenset()

    @property
    def size(self) -> int:
        return sum(p.numel() for p in self.params)

    def trains_in(self, epoch: int) -> bool:
        return self.trains_from is not None and epoch >= self.trains_from


def plan_groups(model: nn.Module, config: RunConfig) -> list[LayerGroup]:
    """The model's layer groups with their learning-rate multipliers and unfreezing epochs.

    Call it on the model as created: parameters that do not require gradients then are the model's own
    always-frozen ones (LayerGroup.fixed)."""
    named = group_parameters(model, get_spec(config.model.name))
    names = [n for n, _ in named]
    t, n = config.train, len(named)
    mults, frozen = group_settings(names, config)
    starts: list[int | None] = [1] * n
    for i in range(frozen):
        starts[i] = None
    # Unfreeze the frozen groups nearest the head first, one per epoch listed.
    for epoch, i in zip(sorted(t.unfreeze_at), range(frozen - 1, -1, -1)):
        starts[i] = epoch
    return [LayerGroup(name, params, m, s, frozenset(id(p) for p in params if not p.requires_grad))
            for (name, params), m, s in zip(named, mults, starts)]


def group_settings(names: list[str], config: RunConfig) -> tuple[list[float], int]:
    """(learning-rate multiplier per group, how many groups from the stem start frozen) for a model whose
    layer groups are `names` (stem first, head last); ConfigError, one sentence, for a wrong count of
    --group-lr-mult values or a --freeze group the model lacks. Needs no model: `check_before_run` uses it."""
    t, n = config.train, len(names)
    if t.group_lr_mult:
        if len(t.group_lr_mult) != n:
            raise ConfigError(f"{config.model.name} has {n} layer groups ({', '.join(names)}): give {n} "
                              f"learning-rate multipliers, not {len(t.group_lr_mult)}")
        mults = list(t.group_lr_mult)
    elif t.lr_decay is not None:
        mults = [t.lr_decay ** (n - 1 - i) for i in range(n)]
    else:
        mults = [1.0] * n
    freeze = config.model.freeze
    if freeze == "none":
        frozen = 0
    elif freeze == "backbone":
        frozen = n - 1
    else:
        target = freeze.removeprefix("until:")
        if target not in names:
            raise ConfigError(f"{config.model.name} has no layer group '{target}'; its groups are {', '.join(names)}")
        frozen = names.index(target) + 1
        if frozen == n:
            raise ConfigError(f"freezing until '{target}' would freeze the head too: nothing would train")
    return mults, frozen


def apply_freezing(groups: list[LayerGroup], epoch: int) -> None:
    """Set requires_grad for the 1-based `epoch`: frozen groups get no gradients (and keep their BN statistics);
    parameters the model keeps frozen itself (LayerGroup.fixed) never get requires_grad."""
    for g in groups:
        trains = g.trains_in(epoch)
        for p in g.params:
            p.requires_grad_(trains and id(p) not in g.fixed)


def optimizer_param_groups(groups: list[LayerGroup], lr: float, weight_decay: float,
                           decay_norm_bias: bool = True) -> list[dict]:
    """torch.optim parameter groups: every layer group (frozen ones too: they get no gradient, so the
    optimiser skips them until they unfreeze), split into decayed and undecayed parameters if asked."""
    out = []
    for g in groups:
        if not decay_norm_bias:
            decay = [p for p in g.params if p.ndim > 1]
            plain = [p for p in g.params if p.ndim <= 1]  # biases and normalisation scales
            parts = [(decay, weight_decay), (plain, 0.0)]
        else:
            parts = [(g.params, weight_decay)]
        out += [{"params": ps, "lr": lr * g.lr_mult, "weight_decay": wd, "name": g.name}
                for ps, wd in parts if ps]
    return out


def group_table(groups: list[LayerGroup], lr: float) -> list[dict]:
    """One row per group: name, parameter count, learning rate, and when it trains."""
    return [{"group": g.name, "params": g.size, "lr_mult": g.lr_mult, "lr": lr * g.lr_mult,
             "trains_from_epoch": g.trains_from} for g in groups]


def trains_text(trains_from_epoch: int | None) -> str:
    """When a layer group starts to train, in words: "from the start", "frozen" or "from epoch N"."""
    if trains_from_epoch == 1:
        return "from the start"
    if trains_from_epoch is None:
        return "frozen"
    return f"from epoch {trains_from_epoch}"


def format_group_table(rows: list[dict]) -> str:
    lines = [f"{'group':<14} {'parameters':>12} {'multiplier':>10} {'lr':>10}  trains"]
    for r in rows:
        lines.append(f"{r['group']:<14} {r['params']:>12,} {r['lr_mult']:>10.3g} {r['lr']:>10.3g}  "
                     f"{trains_text(r['trains_from_epoch'])}")
    return "\n".join(lines)
