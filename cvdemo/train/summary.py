"""What a configuration would train, before any training: parameter counts and the layer-group plan.

    s = model_summary(RunConfig(), num_classes=10, in_channels=1)
    s["total"], s["trainable"]          # parameter values; trainable = those that train in epoch 1
    s["groups"][0]                      # {"group", "modules", "parameters", "learning rate", "trains"}

The network is built on the meta device: shapes only, no memory and no time, even for VGG.
"""

from __future__ import annotations

from typing import Any

import torch

from cvdemo.config import RunConfig
from cvdemo.models import create_model, get_spec
from cvdemo.train.groups import apply_freezing, group_table, plan_groups, trains_text

__all__ = ["model_summary"]


def model_summary(config: RunConfig, num_classes: int, in_channels: int) -> dict[str, Any]:
    """Parameter counts and the layer-group plan of `config`'s model with a `num_classes` head.

    {"total": parameter values, "trainable": those that train in the first epoch, "groups": one row per
    layer group from stem to head: {"group", "modules" (its dotted paths, comma-separated), "parameters",
    "learning rate", "trains" (`trains_text`)}}. `in_channels` applies only to models that accept any
    channel count; the others are built for 3. ModelError/ConfigError for a configuration that cannot be built.
    """
    spec = get_spec(config.model.name)
    with torch.device("meta"):
        model = create_model(spec.name, num_classes, in_channels=in_channels if spec.flexible_channels else 3)
    groups = plan_groups(model, config)
    apply_freezing(groups, 1)
    paths = dict(spec.groups)
    rows = [{"group": row["group"], "modules": ", ".join(paths[row["group"]]), "parameters": row["params"],
             "learning rate": row["lr"], "trains": trains_text(row["trains_from_epoch"])}
            for row in group_table(groups, config.train.lr)]
    total = sum(g.size for g in groups)
    trainable = sum(g.size for g in groups if g.trains_in(1))
    return {"total": total, "trainable": trainable, "groups": rows}
