"""`cvdemo attack`: fool a network with noise too faint to see (Captum's FGSM and PGD), or measure how its test
top-1 falls as the noise grows.

    cvdemo attack RUN IMAGE --method pgd --epsilon 4/255 [--target CLASS] --out fig.png --json
    cvdemo attack --model efficientnet_lite0 --pretrained IMAGE --method fgsm --epsilon 0.0157 --out fig.png
    cvdemo attack RUN --curve [--epsilons 0,2/255,8/255] [--limit N] --out curve.png --json

Epsilon is a fraction of the pixel range: 0.0157 and 4/255 are the same (four steps of an 8-bit pixel).
"""

from __future__ import annotations

import argparse
from typing import Any

from cvdemo.cli._common import Subparsers, command, emit
from cvdemo.errors import ConfigError


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "attack", "an adversarial example (FGSM or PGD) that changes a network's answer, "
                                      "or a run's test top-1 against the attack's strength (--curve)")
    p.add_argument("items", nargs="*", metavar="RUN_OR_IMAGE", help="RUN IMAGE, or with --model IMAGE, or with "
                                                                    "--curve RUN")
    p.add_argument("--model", help="a pretrained network instead of a run (e.g. efficientnet_lite0)")
    p.add_argument("--pretrained", action="store_true")
    p.add_argument("--method", default="pgd", choices=("fgsm", "pgd"),
                   help="fgsm: one step; pgd: several smaller steps (stronger; default)")
    p.add_argument("--epsilon", default="4/255", help="largest change of any pixel, as a fraction of the pixel "
                                                     "range: 0.0157 or 4/255 (default 4/255)")
    p.add_argument("--target", help="class name or index to make the network say (default: any class but its answer)")
    p.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
    p.add_argument("--curve", action="store_true", help="a run's top-1 on its test split at several epsilons")
    p.add_argument("--epsilons", help="--curve: comma-separated epsilons (default 0,1/255,2/255,...,64/255)")
    p.add_argument("--limit", type=int, help="--curve: at most N test images (stratified)")
    p.add_argument("--out", required=True, help="PNG: original | magnified noise | attacked, or the curve")
    p.set_defaults(func=cmd_attack)


def cmd_attack(args: argparse.Namespace) -> int:
    from cvdemo.explain.attack import ATTACK_NOTES, epsilon_label, parse_epsilon

    if args.steps < 1:
        raise ConfigError(f"--steps must be at least 1, not {args.steps}")
    if args.curve:
        return _curve(args)
    from cvdemo.cli.analysis import load_classifier, resolve_target
    from cvdemo.explain.attack import attack_image
    from cvdemo.explain.attack_plot import attack_figure
    from cvdemo.predict import read_image_file

    epsilon = parse_epsilon(args.epsilon)
    clf, _, rest = load_classifier(list(args.items), args.model, args.pretrained, 1, "one image")
    target = resolve_target(args.target, clf.classes)
    image = read_image_file(rest[0])
    result = attack_image(clf, image, args.method, epsilon, target, steps=args.steps)
    out = attack_figure(result, args.out)
    payload: dict[str, Any] = {**result.to_dict(), "out": str(out), "source": clf.source}
    before, after = result.before[0], result.after[0]
    aim = f"towards '{result.target_name}'" if target is not None else "untargeted"
    human = "\n".join([
        f"{clf.source}: {args.method.upper()} ({ATTACK_NOTES[args.method]}), {aim}, epsilon {epsilon_label(epsilon)}",
        f"  before: {before['class']} ({before['prob']:.1%})",
        f"  after:  {after['class']} ({after['prob']:.1%}) — {'fooled' if result.success else 'not fooled'}",
        f"  largest pixel change {result.max_change * 255:.2f}/255 · {result.seconds:.2f} s",
        f"picture: {out}"])
    emit(args, payload, human)
    return 0


def _curve(args: argparse.Namespace) -> int:
    from cvdemo import runs
    from cvdemo.explain.attack import CURVE_EPSILONS, robustness_curve
    from cvdemo.explain.attack_plot import robustness_figure

    if args.model or len(args.items) != 1:
        raise ConfigError("--curve needs one run (its test split is attacked), not --model or an image")
    if args.target is not None:
        raise ConfigError("--curve attacks every image away from its own class: leave out --target")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {args.limit}")
    epsilons = tuple(e for e in args.epsilons.split(",") if e.strip()) if args.epsilons else CURVE_EPSILONS
    run_dir = runs.resolve_run(args.items[0])
    curve = robustness_curve(run_dir, epsilons, method=args.method, steps=args.steps, limit=args.limit)
    out = robustness_figure(curve, args.out)
    rows = [f"  epsilon {e * 255:>4.3g}/255: top-1 {t:.1%}" for e, t in zip(curve["epsilons"], curve["top1"])]
    emit(args, {**curve, "run": str(run_dir), "out": str(out)},
         "\n".join([f"{run_dir.name}: {args.method.upper()} on {curve['images']} test images", *rows,
                    f"picture: {out}"]))
    return 0
