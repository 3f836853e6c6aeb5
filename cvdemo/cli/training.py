"""Training commands: `cvdemo train`, `lr-find`, `recipes`, `sweep` and `preview-augment`.

Every setting of a RunConfig is a flag (`add_config_flags`); a recipe or a --config file gives the
starting point and the flags the user typed override it (`base_config`, `config_from_args`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.cli._common import RUNS_HELP, Subparsers, command, emit
from cvdemo.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cvdemo.errors import CvdemoError
from cvdemo.progress import HEAD_ONLY
from cvdemo.recipes import Recipe, list_recipes, load_recipe


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "train", "train a model and leave a complete run folder")
    g = p.add_argument_group("run")
    g.add_argument("--config", help="a JSON config file (flags override it)")
    g.add_argument("--name", help="a label for the run")
    g.add_argument("--out", help=RUNS_HELP)
    g.add_argument("--resume", metavar="RUN", help="continue a cancelled or interrupted run from its last epoch")
    g.add_argument("--recipe", help="start from a named recipe (see `cvdemo recipes`); flags override it")
    g.add_argument("--lr-find", action="store_true", help="run the learning-rate finder first and train at its suggestion")
    g.add_argument("--run-dir", help=argparse.SUPPRESS)
    add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = command(subparsers, "lr-find", "learning-rate finder: an exponential sweep of the rate, with a suggestion")
    p.add_argument("--config", help="a JSON config file (flags override it)")
    p.add_argument("--recipe", help="start from a named recipe")
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=100, help="number of batches in the sweep")
    p.add_argument("--plot", help="write loss against learning rate to this PNG")
    add_config_flags(p)
    p.set_defaults(func=cmd_lr_find)

    command(subparsers, "recipes", "list the ready-made recipes (the reports' experiments and classroom demos)"
            ).set_defaults(func=cmd_recipes)

    p = command(subparsers, "sweep", "train every combination of some settings and write a comparison table")
    p.add_argument("--recipe", help="start from a named recipe")
    p.add_argument("--config", help="a JSON config file")
    p.add_argument("--vary", action="append", metavar="KEY=V1,V2", help="a setting and its values (repeatable)")
    p.add_argument("--parallel", type=int, default=1, help="runs at once, each in its own process")
    p.add_argument("--out", help=RUNS_HELP)
    add_config_flags(p)
    p.set_defaults(func=cmd_sweep)

    p = command(subparsers, "preview-augment", "write a grid of training images as the model will see them")
    p.add_argument("--recipe", help="start from a named recipe")
    p.add_argument("--config", help="a JSON config file")
    p.add_argument("--out", dest="out_file", required=True, help="PNG file to write")
    p.add_argument("-n", type=int, default=16, help="how many images")
    add_config_flags(p)
    p.set_defaults(func=cmd_preview_augment)


# Flags are generated from the config dataclasses, so every field has one: --field-name, except these.
FLAG_NAMES = {("data", "source"): "--data", ("model", "name"): "--model"}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, help text from the field's metadata; unset flags stay None."""
    for section, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
        group = parser.add_argument_group(f"{section} settings")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            flag = FLAG_NAMES.get((section, f.name), "--" + f.name.replace("_", "-"))
            hint = hints[f.name]
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            base = args[0] if args and typing.get_origin(hint) is not tuple else hint
            help_text = f.metadata.get("help", "")
            if f.metadata.get("choices"):
                help_text += f" ({', '.join(f.metadata['choices'])})"
            kwargs: dict[str, Any] = {"dest": f"{section}.{f.name}", "default": None, "help": help_text}
            if base is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            elif base in (int, float):
                kwargs["type"] = base
                kwargs["metavar"] = "N" if base is int else "X"
            else:
                kwargs["metavar"] = "LIST" if typing.get_origin(hint) is tuple else "TEXT"
            group.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The RunConfig of --config (or `base`, or the defaults) with every flag the user gave applied."""
    if base is None:
        base = RunConfig.from_json_file(args.config) if args.config else RunConfig()
    changes: dict[str, Any] = {"data": {}, "model": {}, "train": {}}
    for dest, value in vars(args).items():
        if "." in dest and value is not None:
            section, field = dest.split(".", 1)
            changes[section][field] = value
    if getattr(args, "name", None) is not None:
        changes["name"] = args.name
    return base.replace(**changes)


def base_config(args: argparse.Namespace) -> tuple[RunConfig, Recipe | None]:
    """The config a training command starts from: a recipe, a config file, or the defaults."""
    if getattr(args, "recipe", None):
        recipe = load_recipe(args.recipe)
        base = recipe.config_for(getattr(args, "data.source", None))
        return base, recipe
    return (RunConfig.from_json_file(args.config) if args.config else RunConfig()), None


class ProgressBar:
    """Trainer callback: a tqdm bar per epoch on stderr (hidden when stderr is not a terminal)."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.bar = None
        self.run_dir = run_dir

    def on_train_start(self, trainer) -> None:
        if self.run_dir is not None:
            print(f"training into {self.run_dir}", file=sys.stderr)

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
        head_only = f" ({HEAD_ONLY})" if record.get("head_only") else ""
        print(f"epoch {record['epoch']}/{trainer.epochs}: train loss {record['train_loss']:.4f}{val}, "
              f"{record['images_per_s']:.0f} images/s{head_only}", file=sys.stderr)

    def on_train_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    from cvdemo.train import distributed
    from cvdemo.train.job import run_training

    launch = distributed.from_env()  # None unless torchrun started several ranks
    if launch is not None and (args.resume or args.run_dir):
        raise CvdemoError("under torchrun a run starts fresh: --resume and --run-dir need a single process "
                          "(resume with plain `cvdemo train --resume RUN`)")
    rank = launch.rank if launch is not None else 0  # rank 0 writes the run folder and speaks
    resume = find_lr_first = False
    run_dir: Path | None
    if args.resume:
        run_dir = runs.resolve_run(args.resume, args.out)
        config = RunConfig.from_json_file(run_dir / "config.json")
        runs.check_resumable(run_dir)
        resume = True
    elif args.run_dir:  # a run folder prepared by runs.create_run (the app launches training this way)
        run_dir = Path(args.run_dir)
        config = RunConfig.from_json_file(run_dir / "config.json")
        try:
            slot = runs.wait_for_slot(run_dir)  # held open while training: CVDEMO_MAX_RUNNING
            from cvdemo.device import use_slot_gpu

            use_slot_gpu(runs.slot_number(slot), config.train.device)  # slot i trains on GPU i
        except runs.CancelledWhileQueued as e:
            print(f"cvdemo train: {e}", file=sys.stderr)
            return 0
    else:
        base, recipe = base_config(args)
        config = config_from_args(args, base)
        # Under torchrun the finder waits for the process group: rank 0 sweeps on its own GPU, all train at its rate.
        find_lr_first = bool(args.lr_find or (recipe is not None and recipe.lr_find))
        from cvdemo.train.setup import check_before_run

        check_before_run(config)  # a mistake found here leaves no run folder behind
        if find_lr_first and launch is None:
            config, find_lr_first = with_found_lr(config), False
        run_dir = runs.create_run(args.out or runs.default_root(), config) if rank == 0 and not find_lr_first else None
    from cvdemo.train.groups import format_group_table

    if launch is not None:
        distributed.check_config(config)
    with distributed.process_group(launch, config.train.device):
        if find_lr_first:
            config = with_found_lr(config)
            run_dir = runs.create_run(args.out or runs.default_root(), config) if rank == 0 else None
        if run_dir is None:  # another torchrun rank: it trains its share in silence, in a scratch run folder
            with tempfile.TemporaryDirectory(prefix=f"cvdemo-rank{rank}-") as scratch:
                run_training(config, runs.create_run(scratch, config))
            return 0
        from cvdemo.train.cpu_share import share_cores

        # CPU runs side by side under one runs folder split its cores (torchrun ranks are sized by torchrun).
        with share_cores(run_dir.parent, config.train.device, enabled=launch is None) as share:
            summary = run_training(config, run_dir, callbacks=[ProgressBar(run_dir), share], resume=resume)
    if summary.get("groups") and (config.train.lr_decay or config.train.group_lr_mult
                                  or config.model.freeze != "none"):
        print(format_group_table(summary["groups"]), file=sys.stderr)
    test = summary.get("test")
    payload = {"run": str(run_dir), "status": summary["status"], "message": summary["message"],
               "epochs": summary["epochs"], "seconds": round(summary["seconds"], 2), "test": test,
               "lr": config.train.lr, "groups": summary.get("groups")}
    if summary["status"] == "completed" and test is not None:  # a completed run always has its test figures
        human = (f"{summary['status']}: test top-1 {test['top1']:.1%}, top-5 {test['top5']:.1%}, "
                 f"loss {test['loss']:.3f} after {summary['epochs']} epochs in {summary['seconds']:.1f} s\n"
                 f"run folder: {run_dir}")
    else:
        human = f"{summary['status']}: {summary['message']}\nrun folder: {run_dir}"
    emit(args, payload, human)
    return 0


def with_found_lr(config: RunConfig) -> RunConfig:
    """`config` at the learning-rate finder's suggestion (under torchrun: rank 0's, the same on every rank)."""
    from cvdemo.device import resolve_device
    from cvdemo.train import distributed
    from cvdemo.train.job import find_lr

    found = find_lr(config)  # None on the other torchrun ranks
    if found is not None:
        print(f"learning-rate finder suggests {found.suggested_lr:.3g} "
              f"(minimum/10 rule: {found.min_div10_lr:.3g})", file=sys.stderr)
    lr = distributed.broadcast_float(found.suggested_lr if found is not None else None,
                                     resolve_device(config.train.device))
    return config.replace(train={"lr": lr})


def cmd_lr_find(args: argparse.Namespace) -> int:
    from cvdemo.train.job import find_lr

    base, _ = base_config(args)
    config = config_from_args(args, base)
    result = find_lr(config, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    if args.plot:
        from cvdemo.plots import lr_find_plot

        lr_find_plot(result, args.plot)
    human = (f"suggested learning rate (steepest descent): {result.suggested_lr:.3g}\n"
             f"minimum of the smoothed loss at {result.min_loss_lr:.3g}; minimum/10 rule: {result.min_div10_lr:.3g}"
             + (f"\nplot: {args.plot}" if args.plot else ""))
    emit(args, {**result.to_dict(), "plot": args.plot}, human)
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    recipes = [load_recipe(n) for n in list_recipes()]
    lines = []
    for r in recipes:
        needs = f"  needs --data: {r.data_required}" if r.data_required else ""
        lines.append(f"{r.name:<32} [{r.device}] {r.title}{chr(10) + ' ' * 4 + needs if needs else ''}")
    emit(args, {"recipes": [r.summary() for r in recipes]}, "\n".join(lines))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from cvdemo.compare import parse_vary, run_sweep, to_markdown

    base, recipe = base_config(args)
    base = config_from_args(args, base)
    vary = parse_vary(args.vary or [])
    if not vary and recipe is not None and recipe.sweep:
        vary = {k: list(v) for k, v in recipe.sweep.items()}
    if not vary:
        raise CvdemoError("nothing to sweep: add --vary KEY=V1,V2 (e.g. --vary model=lenet,resnet18)")

    from cvdemo.compare import expand_grid
    from cvdemo.train.setup import check_before_run

    for _, config in expand_grid(base, vary):  # every arm's mistakes before any run folder is made
        check_before_run(config)

    def started(values: dict[str, Any], run_dir: Path) -> None:
        print(f"run {run_dir.name}: {' '.join(f'{k}={v}' for k, v in values.items())}", file=sys.stderr)

    result = run_sweep(base, vary, Path(args.out or runs.default_root()), parallel=args.parallel, on_run=started,
                       callbacks=[ProgressBar()])
    emit(args, result, to_markdown(result["rows"]) + f"\ntables in {result['folder']}")
    return 0


def cmd_preview_augment(args: argparse.Namespace) -> int:
    from cvdemo.augment_preview import preview_grid

    base, _ = base_config(args)
    config = config_from_args(args, base)
    path = preview_grid(config, args.out_file, n=args.n)
    emit(args, {"out": str(path), "augment": config.data.augment, "mixup": config.train.mixup,
                 "cutmix": config.train.cutmix}, f"wrote {path}")
    return 0
