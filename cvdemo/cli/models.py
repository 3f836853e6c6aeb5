"""`cvdemo models`: the architectures, their sizes and whether pretrained weights work offline."""

from __future__ import annotations

import argparse
from typing import Any

from cvdemo.cli._common import Subparsers, command, emit


def add_parsers(subparsers: Subparsers) -> None:
    command(subparsers, "models", "list the architectures, their sizes and whether pretrained weights work offline"
            ).set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    import torch

    from cvdemo.models import count_parameters, create_model, get_spec, list_models, pretrained_offline

    rows: list[dict[str, Any]] = []
    for name in list_models():
        spec = get_spec(name)
        with torch.device("meta"):  # count parameters without allocating or initialising weights
            total, _ = count_parameters(create_model(name, 10, in_channels=3))
        rows.append({"name": name, "family": spec.family, "params": total, "input_size": spec.input_size,
                     "pretrained": spec.pretrained, "pretrained_offline": pretrained_offline(name)
                     if spec.pretrained else False, "description": spec.description})
    lines = [f"{'model':<20} {'params':>9}  {'input':>5}  {'weights':<24} description"]
    for r in rows:
        weights = ("-" if not r["pretrained"] else
                   "ImageNet, offline" if r["pretrained_offline"] else "ImageNet, needs download")
        lines.append(f"{r['name']:<20} {r['params'] / 1e6:>8.2f}M  {r['input_size']:>5}  {weights:<24} "
                     f"{r['description']}")
    emit(args, {"models": rows}, "\n".join(lines))
    return 0
