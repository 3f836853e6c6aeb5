"""`cvdemo runs`: the runs under a runs folder, with their status and best metrics."""

from __future__ import annotations

import argparse

from cvdemo import runs
from cvdemo.cli._common import RUNS_HELP, Subparsers, command, emit


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "runs", "list runs with their status and best metrics")
    p.add_argument("--root", help=RUNS_HELP)
    p.set_defaults(func=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    found = runs.list_runs(args.root)
    lines = [f"{'run':<48} {'state':<11} {'epochs':>7} {'val top-1':>9} {'test top-1':>10}"]
    for r in found:
        pct = lambda v: f"{v:.1%}" if v is not None else "-"  # noqa: E731
        lines.append(f"{r.id:<48} {r.state:<11} {r.epochs_done:>3}/{r.epochs:<3} {pct(r.best_val_top1):>9} "
                     f"{pct(r.test_top1):>10}")
    if not found:
        lines = [f"no runs under {args.root or runs.default_root()}: start one with `cvdemo train`"]
    emit(args, {"root": str(args.root or runs.default_root()), "runs": [r.to_dict() for r in found]},
          "\n".join(lines))
    return 0
