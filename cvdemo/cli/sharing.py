"""Sharing commands: `cvdemo report` and `cvdemo export`.

    cvdemo report RUN [RUN ...] --out report.html       # one self-contained HTML file
    cvdemo export RUN --format torchscript|onnx --out DIR   # the model and its card (JSON and Markdown)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cvdemo.cli._common import CHECKPOINTS, FORMATS, SPLITS, Subparsers, command, emit
from cvdemo.errors import ConfigError


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "report", "one self-contained HTML report of a run, or a comparison of several runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders or run ids")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--title", help="heading of the report (default: from the runs)")
    p.add_argument("--split", default="test", choices=SPLITS, help="the split every metric is measured on")
    p.add_argument("--checkpoint", default="best", choices=CHECKPOINTS)
    p.add_argument("--explain", type=int, default=3, help="images explained per run (0 = none)")
    p.add_argument("--explain-methods", default="gradcam", metavar="A,B",
                   help="explanation methods, comma-separated, one overlay each (default gradcam; "
                        "`cvdemo explain --list` shows them all)")
    p.add_argument("--gallery", type=int, default=16, help="most confidently wrong images per run")
    p.add_argument("--embed-limit", type=int, default=1000, help="at most this many points in the PCA plot")
    p.add_argument("--robustness", action="store_true",
                   help="add test top-1 against the strength of an FGSM attack (at most 1000 images)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    p.set_defaults(func=cmd_report)

    p = command(subparsers, "export",
                "write a run's model as TorchScript or ONNX with a model card (JSON and Markdown)")
    p.add_argument("run", help="a run folder or run id")
    p.add_argument("--format", default="torchscript", choices=FORMATS)
    p.add_argument("--out", required=True, help="folder for the model file, model_card.json and model_card.md")
    p.add_argument("--checkpoint", default="best", choices=CHECKPOINTS)
    p.set_defaults(func=cmd_export)


def cmd_report(args: argparse.Namespace) -> int:
    from cvdemo.report import ReportOptions, write_report

    for flag in ("explain", "gallery", "embed_limit"):
        if getattr(args, flag) < (1 if flag == "embed_limit" else 0):
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least {1 if flag == 'embed_limit' else 0}, "
                              f"got {getattr(args, flag)}")
    options = ReportOptions(split=args.split, checkpoint=args.checkpoint, explain=args.explain,
                            gallery=args.gallery, embed_limit=args.embed_limit, device=args.device,
                            robustness=args.robustness,
                            explain_methods=tuple(m.strip() for m in args.explain_methods.split(",") if m.strip()))
    started = time.perf_counter()
    out = write_report(args.runs, args.out, title=args.title, options=options,
                       on_run=lambda d: print(f"reporting on run {Path(d).name} ...", file=sys.stderr))
    seconds = time.perf_counter() - started
    size = out.stat().st_size
    emit(args, {"out": str(out), "runs": list(args.runs), "bytes": size, "seconds": round(seconds, 2)},
          f"wrote {out} ({size / 2**20:.1f} MB, {len(args.runs)} run{'s' if len(args.runs) > 1 else ''}, "
          f"{seconds:.1f} s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from cvdemo.export import CARD_JSON, CARD_MD, export_run

    card = export_run(args.run, args.out, fmt=args.format, checkpoint=args.checkpoint)
    out = Path(args.out)
    files = [str(out / card["file"]), str(out / CARD_JSON), str(out / CARD_MD)]
    metrics = card["metrics"]
    check = card.get("check") or {}
    lines = [f"exported {card['architecture']} ({card['num_classes']} classes, input {card['input']['channels']}x"
             f"{card['input']['size']}x{card['input']['size']}) as {card['model_format']}:"]
    lines += [f"  {f}" for f in files]
    if "top1" in metrics:
        lines.append(f"{metrics['split']} top-1 {metrics['top1']:.1%}, macro-F1 {metrics['macro_f1']:.3f} "
                     f"({metrics['images']} images)")
    if "max_abs_diff" in check:
        lines.append(f"checked against the run on {check['images']} test images: largest probability "
                     f"difference {check['max_abs_diff']:.2g}")
    emit(args, {"out": str(out), "files": files, "card": card}, "\n".join(lines))
    return 0
