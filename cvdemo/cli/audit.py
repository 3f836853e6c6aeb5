"""`cvdemo audit`: check a data set before training (duplicates, leakage, likely wrong labels, outliers,
odd images, class balance) on the features of a pretrained network."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cvdemo.cli._common import RUNS_HELP, Subparsers, command, emit
from cvdemo.errors import CvdemoError

# A literal copy of cvdemo.audit.NEAR_THRESHOLD (tests/test_audit.py checks they agree): importing the audit
# here would load numpy and torch for every command's --help.
NEAR_THRESHOLD = 0.90


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "audit", "check a data set before training: duplicates, train/test leakage, "
                                     "likely wrong labels, outliers, odd images, class balance")
    p.add_argument("data", metavar="DATA", help="a built-in data set, an image folder or a .zip (as for train)")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="pretrained network whose features are compared (default efficientnet_lite0, offline)")
    p.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the model's)")
    p.add_argument("--limit", type=int, default=None,
                   help="at most N training images and N validation and test images each (stratified)")
    p.add_argument("--near-threshold", type=float, default=NEAR_THRESHOLD,
                   help=f"cosine similarity of features from which two images are near duplicates "
                        f"(default {NEAR_THRESHOLD})")
    p.add_argument("--seed", type=int, default=0, help="the seed train would split a flat folder with")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--out", help="write a self-contained HTML report here (images inline)")
    p.add_argument("--csv", help="write every finding, one row per image, to this CSV file")
    p.add_argument("--root", help=f"{RUNS_HELP}: where leakage and conflicting labels found here are remembered, "
                                  "so Evaluate warns about runs trained on this data")
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from cvdemo.audit import KINDS, audit, audit_html, item_picture
    from cvdemo.audit.store import remember

    if args.limit is not None and args.limit < 1:
        raise CvdemoError(f"--limit must be at least 1, got {args.limit}")
    report = audit(args.data, model=args.model, image_size=args.image_size, limit=args.limit,
                   near_threshold=args.near_threshold, seed=args.seed, device=args.device)
    written = {}
    for flag, text in (("out", lambda: audit_html(report, lambda item: item_picture(report.bundle, item))),
                       ("csv", report.to_csv)):
        target = getattr(args, flag)
        if target:
            try:
                Path(target).write_text(text(), encoding="utf-8")
            except OSError as e:
                raise CvdemoError(f"cannot write {target}: {e.strerror or e}") from None
            written[flag] = str(target)
    remembered = None
    try:  # as the Data page does: Evaluate then warns that a run on this data may have an optimistic test number
        remembered = str(remember(report, Path(args.root) if args.root else None))
    except OSError as e:
        print(f"cvdemo audit: could not remember the findings for the Evaluate page ({e.strerror or e})",
              file=sys.stderr)
    payload = {**report.to_dict(), **({"written": written} if written else {}), "remembered": remembered}
    summary = report.summary()
    lines = [f"{report.images:,} images, {len(report.classes)} classes ({report.model} features at "
             f"{report.image_size}px, {report.seconds.get('total', 0):.1f} s)"]
    lines += [f"  {summary[k]:5d}  {words}" for k, words in KINDS.items()]
    lines += [f"  {summary['leakage']:5d}  duplicate groups across train and val/test (leakage)",
              f"  {summary['conflicting']:5d}  duplicate groups with different labels"]
    lines += [f"  note: {n}" for n in report.notes]
    top = sorted(report.findings, key=lambda f: -f.score)[:10]
    if top:
        lines.append("highest scores:")
        lines += [f"  {f.score:.3f} {f.kind}: {', '.join(i.path for i in f.items[:3])} - {f.detail}" for f in top]
    lines += [f"wrote {path}" for path in written.values()]
    emit(args, json.loads(json.dumps(payload)), "\n".join(lines))
    return 0
