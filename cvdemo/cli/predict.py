"""`cvdemo predict`: top-k classes for images, from a run, an exported model or a pretrained network."""

from __future__ import annotations

import argparse

from cvdemo import runs
from cvdemo.cli._common import Subparsers, command, emit
from cvdemo.errors import CvdemoError


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "predict",
                "top-k classes for images, from a run, an exported model or a pretrained network")
    p.add_argument("items", nargs="+", metavar="RUN_OR_IMAGE",
                   help="RUN IMAGE..., EXPORT IMAGE... (a model.pt from cvdemo export, or its folder) "
                        "or, with --model, IMAGE...")
    p.add_argument("--model", help="a pretrained network instead of a run (e.g. efficientnet_lite0)")
    p.add_argument("--pretrained", action="store_true")
    p.add_argument("--topk", type=int, default=5)
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from cvdemo.predict import Classifier, read_image_file

    items = list(args.items)
    if args.model:
        if not args.pretrained:
            raise CvdemoError("--model without a run needs --pretrained (an untrained network predicts noise)")
        classifier = Classifier.pretrained(args.model)
        images = items
    else:
        if len(items) < 2:
            raise CvdemoError("give a run (or an exported model) and at least one image, "
                              "or --model NAME --pretrained and images")
        from cvdemo.export import ExportedClassifier, is_export

        classifier = (ExportedClassifier.load(items[0]) if is_export(items[0])
                      else Classifier.from_run(runs.resolve_run(items[0])))
        images = items[1:]
    if args.topk < 1:
        raise CvdemoError(f"--topk must be at least 1, got {args.topk}")
    decoded = [read_image_file(p) for p in images]
    tops = classifier.top(decoded, args.topk)
    predictions = [{"image": str(p), "top": top} for p, top in zip(images, tops)]
    lines = []
    for p, top in zip(images, tops):
        lines.append(str(p))
        lines += [f"  {t['prob']:6.1%}  {t['class']}" for t in top]
    emit(args, {"source": classifier.source, "predictions": predictions}, "\n".join(lines))
    return 0
