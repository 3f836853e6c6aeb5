"""Explanations in a student's words: what a map's faithfulness scores mean, and what a layer is called.

    in_words(faithfulness(model, x, exp))   # "Hiding the pixels this map points at lowers the confidence ..."
    layer_names(model, "resnet18")          # {"layer1.0.conv1": "stage 1 (first block) · conv 1 of 4", ...}

The numbers stay with `Faithfulness`; this module only says them in plain language, so the page, the CLI
and the report say the same thing.
"""

from __future__ import annotations

import re

from torch import nn

from cvdemo.explain.metrics import Faithfulness

STAGE = re.compile(r"^(stage|layer|block|inception)(\d+)$")  # the registry's names for a run of blocks
GROUP_WORDS = {"stem": "stem (on the pixels)", "head_conv": "last convolution (the feature map CAM reads)",
               "features": "pretrained features", "skip": "skip connection", "classifier": "classifier",
               "fc": "fully connected", "head": "head (the class scores)"}


def in_words(f: Faithfulness) -> str:
    """One short sentence on what the deletion and insertion checks found, for someone who never met an
    AUC: 'Hiding the pixels this map points at lowers the confidence faster than hiding random ones, ...'."""
    hide = f.deletion_auc < f.deletion_random_auc
    deletion = "Hiding the pixels this map points at lowers the confidence " + (
        "faster than hiding random ones" if hide else "no faster than hiding random ones")
    if f.insertion_auc is None or f.insertion_random_auc is None:
        return deletion + "."
    show = f.insertion_auc > f.insertion_random_auc
    return f"{deletion}, {'and' if hide == show else 'but'} showing them first restores it " + (
        "faster." if show else "no faster.")


def group_words(groups: list[str]) -> dict[str, str]:
    """The registry's layer-group names said plainly: 'layer1' -> 'stage 1 (first block)', 'conv3_5' ->
    'convolutions 3-5'; the first and last of the stages say so."""
    stages = [g for g in groups if STAGE.match(g)]
    words = {}
    for g in groups:
        if g in stages:
            k = stages.index(g)
            where = " (first block)" if k == 0 else " (last block)" if k == len(stages) - 1 else ""
            words[g] = f"stage {k + 1}{where}"
        elif m := re.match(r"^conv(\d+)(?:_(\d+))?$", g):
            words[g] = f"convolutions {m[1]}-{m[2]}" if m[2] else f"convolution {m[1]}"
        else:
            words[g] = GROUP_WORDS.get(g, g.replace("_", " "))
    return words


def layer_names(model: nn.Module, arch: str | None, kind: type[nn.Module] = nn.Conv2d) -> dict[str, str]:
    """Every `kind` layer of `model` (input side first) -> its plain name: the layer group it belongs to in
    the registry ('stage 1 (first block)') and its place in the group ('conv 2 of 7'). Layers outside every
    group, or of an architecture the registry does not know, keep their code name."""
    from cvdemo.models import get_spec, module_paths

    paths = module_paths(model, kind)
    try:
        groups = list(get_spec(arch).groups) if arch else []
    except Exception:  # noqa: BLE001 - an unknown architecture: code names only
        groups = []
    words = group_words([g for g, _ in groups])
    owner: dict[str, str] = {}
    for path in paths:
        for group, prefixes in groups:
            if any(path == p or path.startswith(p + ".") for p in prefixes):
                owner[path] = group
                break
    names = {}
    for path in paths:
        if path not in owner:
            names[path] = path
            continue
        members = [p for p in paths if owner.get(p) == owner[path]]
        place = f" · conv {members.index(path) + 1} of {len(members)}" if len(members) > 1 else ""
        names[path] = words[owner[path]] + place
    return names
