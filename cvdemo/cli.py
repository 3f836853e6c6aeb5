"""The `cvdemo` command line (also `python -m cvdemo`).

Every command takes `--json`: the last line of stdout is then one JSON object.
Errors a user can fix go to stderr as one sentence with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from cvdemo.errors import CvdemoError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    print(json.dumps(payload) if args.json else human)


# -- models --------------------------------------------------------------------------------------

def cmd_models(args: argparse.Namespace) -> int:
    import torch

    from cvdemo.models import count_parameters, create_model, get_spec, list_models, pretrained_offline

    rows = []
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
    _emit(args, {"models": rows}, "\n".join(lines))
    return 0


# -- train ---------------------------------------------------------------------------------------

# CLI flag -> (config section, field). Flags left unset keep the config file's or the default value.
TRAIN_FLAGS = {
    "data": ("data", "source"), "val_fraction": ("data", "val_fraction"),
    "test_fraction": ("data", "test_fraction"), "limit_train": ("data", "limit_train"),
    "limit_test": ("data", "limit_test"), "augment": ("data", "augment"), "image_size": ("data", "image_size"),
    "skip_bad": ("data", "skip_bad"), "workers": ("data", "workers"),
    "model": ("model", "name"), "pretrained": ("model", "pretrained"), "freeze": ("model", "freeze"),
    "zero_init_residual": ("model", "zero_init_residual"),
    "epochs": ("train", "epochs"), "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
    "optimizer": ("train", "optimizer"), "momentum": ("train", "momentum"), "nesterov": ("train", "nesterov"),
    "weight_decay": ("train", "weight_decay"), "schedule": ("train", "schedule"),
    "step_size": ("train", "step_size"), "milestones": ("train", "milestones"), "gamma": ("train", "gamma"),
    "warmup_epochs": ("train", "warmup_epochs"), "label_smoothing": ("train", "label_smoothing"),
    "seed": ("train", "seed"), "device": ("train", "device"),
}


def config_from_args(args: argparse.Namespace):
    from cvdemo.config import RunConfig

    base = RunConfig.from_json_file(args.config) if args.config else RunConfig()
    changes: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    for flag, (section, field) in TRAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            changes[section][field] = value
    if args.name is not None:
        changes["name"] = args.name  # type: ignore[assignment]
    return base.replace(**changes)


class ProgressBar:
    """Trainer callback: a tqdm bar per epoch on stderr (hidden when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.bar = None

    def on_epoch_start(self, trainer, epoch: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=len(trainer.train_loader), desc=f"epoch {epoch + 1}/{trainer.epochs}",
                        unit="batch", leave=False, file=sys.stderr, disable=None)

    def on_batch_end(self, trainer, info) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if info.loss is not None:
                self.bar.set_postfix(loss=f"{info.loss:.3f}", lr=f"{info.lr:.2g}", refresh=False)

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
        val = f", val top-1 {record['val_top1']:.1%}" if "val_top1" in record else ""
        print(f"epoch {record['epoch']}/{trainer.epochs}: train loss {record['train_loss']:.4f}{val}, "
              f"{record['images_per_s']:.0f} images/s", file=sys.stderr)

    def on_train_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    from cvdemo import runs
    from cvdemo.config import RunConfig

    if args.run_dir:  # a run folder prepared by runs.create_run (the app launches training this way)
        run_dir = Path(args.run_dir)
        config = RunConfig.from_json_file(run_dir / "config.json")
    else:
        config = config_from_args(args)
        run_dir = runs.create_run(args.out or runs.default_root(), config)
    from cvdemo.train.job import run_training

    print(f"run {run_dir}", file=sys.stderr)
    summary = run_training(config, run_dir, callbacks=[ProgressBar()])
    test = summary.get("test")
    payload = {"run": str(run_dir), "status": summary["status"], "message": summary["message"],
               "epochs": summary["epochs"], "seconds": round(summary["seconds"], 2), "test": test}
    if summary["status"] == "completed":
        human = (f"{summary['status']}: test top-1 {test['top1']:.1%}, top-5 {test['top5']:.1%}, "
                 f"loss {test['loss']:.3f} after {summary['epochs']} epochs in {summary['seconds']:.1f} s\n"
                 f"run folder: {run_dir}")
    else:
        human = f"{summary['status']}: {summary['message']}\nrun folder: {run_dir}"
    _emit(args, payload, human)
    return 0


# -- runs ----------------------------------------------------------------------------------------

def cmd_runs(args: argparse.Namespace) -> int:
    from cvdemo import runs

    found = runs.list_runs(args.root)
    lines = [f"{'run':<48} {'state':<11} {'epochs':>7} {'val top-1':>9} {'test top-1':>10}"]
    for r in found:
        pct = lambda v: f"{v:.1%}" if v is not None else "-"  # noqa: E731
        lines.append(f"{r.id:<48} {r.state:<11} {r.epochs_done:>3}/{r.epochs:<3} {pct(r.best_val_top1):>9} "
                     f"{pct(r.test_top1):>10}")
    if not found:
        lines = [f"no runs under {args.root or runs.default_root()}: start one with `cvdemo train`"]
    _emit(args, {"root": str(args.root or runs.default_root()), "runs": [r.to_dict() for r in found]},
          "\n".join(lines))
    return 0


# -- predict -------------------------------------------------------------------------------------

def cmd_predict(args: argparse.Namespace) -> int:
    from cvdemo import runs
    from cvdemo.predict import Classifier, read_image_file

    items = list(args.items)
    if args.model:
        if not args.pretrained:
            raise CvdemoError("--model without a run needs --pretrained (an untrained network predicts noise)")
        classifier = Classifier.pretrained(args.model)
        images = items
    else:
        if len(items) < 2:
            raise CvdemoError("give a run and at least one image, or --model NAME --pretrained and images")
        classifier = Classifier.from_run(runs.resolve_run(items[0]))
        images = items[1:]
    if args.topk < 1:
        raise CvdemoError(f"--topk must be at least 1, got {args.topk}")
    decoded = [read_image_file(p) for p in images]
    tops = classifier.top(decoded, args.topk)
    predictions = [{"image": str(p), "top": t} for p, t in zip(images, tops)]
    lines = []
    for pred in predictions:
        lines.append(pred["image"])
        lines += [f"  {t['prob']:6.1%}  {t['class']}" for t in pred["top"]]
    _emit(args, {"source": classifier.source, "predictions": predictions}, "\n".join(lines))
    return 0


# -- main ----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cvdemo", description="Image classification playground: train, evaluate, explain.")
    from cvdemo import __version__

    parser.add_argument("--version", action="version", version=f"cvdemo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
        return p

    command("models", "list the architectures, their sizes and whether pretrained weights work offline")

    p = command("train", "train a model and leave a complete run folder")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="digits (default), mnist, fashion-mnist, cifar10, cifar100, a folder or a .zip")
    g.add_argument("--val-fraction", type=float)
    g.add_argument("--test-fraction", type=float)
    g.add_argument("--limit-train", type=int, help="train on at most N images (stratified)")
    g.add_argument("--limit-test", type=int, help="validate and test on at most N images each (stratified)")
    g.add_argument("--augment", help="none, standard (pad-crop + flip), rrc (random-resized-crop + flip), "
                                     "trivialaugment")
    g.add_argument("--image-size", type=int, help="input size in pixels (default: the model's)")
    g.add_argument("--skip-bad", action="store_true", default=None, help="skip unreadable images")
    g.add_argument("--workers", type=int, help="data-loading processes")
    g = p.add_argument_group("model")
    g.add_argument("--model", help="architecture (see `cvdemo models`); default lenet")
    g.add_argument("--pretrained", action="store_true", default=None, help="start from ImageNet weights")
    g.add_argument("--freeze", help="none or backbone (train the head only)")
    g.add_argument("--zero-init-residual", action="store_true", default=None)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--optimizer", help="sgd, adam (default) or adamw")
    g.add_argument("--momentum", type=float)
    g.add_argument("--nesterov", action="store_true", default=None)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--schedule", help="constant, step, multistep, cosine (default) or onecycle")
    g.add_argument("--step-size", type=int, help="step schedule: epochs between decays")
    g.add_argument("--milestones", help="multistep schedule: comma-separated epochs, e.g. 10,20,30")
    g.add_argument("--gamma", type=float, help="decay factor for step/multistep")
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="auto (default), cpu, cuda or mps")
    g = p.add_argument_group("run")
    g.add_argument("--config", help="a JSON config file (flags override it)")
    g.add_argument("--name", help="a label for the run")
    g.add_argument("--out", help="runs folder (default ./runs or $CVDEMO_RUNS)")
    g.add_argument("--run-dir", help=argparse.SUPPRESS)

    p = command("runs", "list runs with their status and best metrics")
    p.add_argument("--root", help="runs folder (default ./runs or $CVDEMO_RUNS)")

    p = command("predict", "top-k classes for images, from a run or a pretrained network")
    p.add_argument("items", nargs="+", metavar="RUN_OR_IMAGE", help="RUN IMAGE... or, with --model, IMAGE...")
    p.add_argument("--model", help="a pretrained network instead of a run (e.g. efficientnet_lite0)")
    p.add_argument("--pretrained", action="store_true")
    p.add_argument("--topk", type=int, default=5)
    return parser


COMMANDS = {"models": cmd_models, "train": cmd_train, "runs": cmd_runs, "predict": cmd_predict}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
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
