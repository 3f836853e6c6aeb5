"""What every command module shares: the parser class, the subcommand factory and output.

Importing this module (and every command module) stays cheap: `cvdemo --help` and argument
errors must not pay for torch, torchvision, scikit-learn or matplotlib. Commands import those
inside their functions.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, NoReturn, TypeAlias

from cvdemo.checkpoint import CHECKPOINTS

__all__ = ["CHECKPOINTS", "FORMATS", "RUNS_HELP", "SPLITS", "TSNE_BACKENDS", "Parser", "Subparsers", "command",
           "emit"]

# Literal copies of cvdemo.evaluate.SPLITS, cvdemo.embed.TSNE_BACKENDS and cvdemo.export.FORMATS
# (tests/test_report.py checks they agree): importing those modules here would put numpy or torch on
# the start-up path of every command. cvdemo.checkpoint imports torch only inside its functions.
SPLITS = ("test", "val", "train")
TSNE_BACKENDS = ("auto", "sklearn", "opentsne")
FORMATS = ("torchscript", "onnx")

RUNS_HELP = "runs folder (default ./runs or $CVDEMO_RUNS)"

# What `parser.add_subparsers()` returns; each command module's `add_parsers` takes it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def command(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    """Add the subcommand `name` to `subparsers`, with `help` as its description and a --json flag.
    The caller adds its arguments and `set_defaults(func=cmd_...)`."""
    p = subparsers.add_parser(name, help=help, description=help)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    return p


def emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    """Print the command's result: `payload` as one JSON line with --json, else the `human` text."""
    print(json.dumps(payload) if args.json else human)
