"""`cvdemo bench`: speed benchmarks, each a ratio against a plain-PyTorch baseline (see cvdemo.bench)."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from typing import Any

from cvdemo.cli._common import Subparsers, command, emit
from cvdemo.errors import CvdemoError


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "bench", "speed benchmarks, each a ratio against a plain-PyTorch baseline in the same run")
    p.add_argument("name", nargs="?", default="all", help="all, or one benchmark name")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from cvdemo import bench
    from cvdemo.device import resolve_device

    names = list(bench.IN_ALL) if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in bench.BENCHMARKS]
    if unknown:
        raise CvdemoError(f"no benchmark '{unknown[0]}'; choose all or one of {', '.join(bench.BENCHMARKS)}")
    device = resolve_device(args.device)
    results: dict[str, Any] = {}
    for name in names:
        print(f"benchmark {name} on {device} ...", file=sys.stderr)
        results[name] = bench.run([name], device)[name]
        print("  " + ", ".join(f"{k}={_figure(v)}" for k, v in _flat(results[name]).items()), file=sys.stderr)
    payload = {"device": str(device), "cpu": platform.processor() or platform.machine(), "threads":
               torch_threads(), "date": time.strftime("%Y-%m-%d"), "results": results}
    human = "\n".join(f"{n:<18} ratio {r['ratio']:.2f}" for n, r in results.items())
    emit(args, payload, human)
    return 0


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _figure(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()
