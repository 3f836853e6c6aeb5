"""The `cvdemo` command line (also `python -m cvdemo`).

Every command takes `--json`: the last line of stdout is then one JSON object.
Errors a user can fix go to stderr as one sentence with exit code 2.

One module per command group; each has `add_parsers(subparsers)`, which adds its subcommands
(through `_common.command`, so each takes --json) and sets `func=cmd_...` on them. Building the
parser imports nothing heavy: the commands import torch and friends when they run.
"""

from __future__ import annotations

import argparse
import os
import sys

from cvdemo import __version__
from cvdemo.allocator import tune_cpu_allocator
from cvdemo.cli import (
    analysis,
    attack,
    audit,
    bench,
    features,
    lessons,
    models,
    predict,
    runs,
    sharing,
    training,
)
from cvdemo.cli._common import Parser
from cvdemo.cli._progress import StderrPhases
from cvdemo.errors import CvdemoError
from cvdemo.progress import listening

__all__ = ["build_parser", "main"]

# In the order `cvdemo --help` lists the commands.
COMMAND_MODULES = (models, training, lessons, bench, runs, features, predict, analysis, audit, attack, sharing)


def build_parser() -> argparse.ArgumentParser:
    """The `cvdemo` parser with every subcommand; parsed args carry `command` and `func`."""
    parser = Parser(prog="cvdemo", description="Image classification playground: train, evaluate, explain.")
    parser.add_argument("--version", action="version", version=f"cvdemo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code: 0 done, 1 internal error, 2 a user error, 130 interrupted."""
    tune_cpu_allocator()  # large tensors reused, not mapped afresh each batch (see cvdemo.allocator)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the subcommand whose flags they are not: "cvdemo train: unrecognized ..."
        prog = f"{parser.prog} {args.command}"
        parser.exit(2, f"{prog}: unrecognized arguments: {' '.join(unknown)} (see {prog} --help)\n")
    try:
        with listening(StderrPhases()):  # every long phase of the command: a bar (or lines) on stderr
            return args.func(args)
    except CvdemoError as e:
        print(f"cvdemo {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cvdemo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("CVDEMO_DEBUG"):
            raise
        print(f"cvdemo {args.command}: internal error ({type(e).__name__}: {e}); "
              f"set CVDEMO_DEBUG=1 for the traceback and please report it", file=sys.stderr)
        return 1
