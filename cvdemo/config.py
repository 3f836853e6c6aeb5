"""Run configuration: frozen dataclasses with a reason and a range on every field.

A `RunConfig` is what a run folder's `config.json` holds and what the CLI, the app
and recipes build. `RunConfig.from_dict` validates as it parses, so a typo or an
absurd value becomes one sentence (`ConfigError`) before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvdemo.errors import ConfigError

AUGMENTS = ("none", "standard", "rrc", "trivialaugment")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "multistep", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BEST_METRICS = ("val_top1", "val_loss")
RESIDENT = ("auto", "on", "off")
# Names other tools use for our fields: an unknown key among these gets a "did you mean".
ALIASES = {"learning_rate": "lr", "lr_schedule": "schedule", "scheduler": "schedule", "batch": "batch_size",
           "bs": "batch_size", "epoch": "epochs", "num_epochs": "epochs", "max_epochs": "epochs",
           "arch": "name", "architecture": "name", "model": "name", "dataset": "source", "path": "source",
           "optim": "optimizer", "wd": "weight_decay", "img_size": "image_size", "input_size": "image_size"}


def _f(default: Any, help: str, *, min: float | None = None, max: float | None = None,
       choices: tuple[str, ...] | None = None, min_exclusive: bool = False) -> Any:
    """A dataclass field whose metadata says what it means and which values are allowed."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "min_exclusive": min_exclusive}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    source: str = _f("digits", "built-in data set name (digits, mnist, fashion-mnist, cifar10, cifar100), "
                     "an image folder or a .zip")
    val_fraction: float = _f(0.1, "fraction of the training pool held out for validation when the "
                             "source has no validation split", min=0.0, max=0.5, min_exclusive=True)
    test_fraction: float = _f(0.2, "fraction held out for testing when a folder has no test split",
                              min=0.0, max=0.5, min_exclusive=True)
    limit_train: int | None = _f(None, "train on at most this many images (stratified)", min=1)
    limit_test: int | None = _f(None, "validate and test on at most this many images each (stratified)", min=1)
    augment: str = _f("none", "training augmentation preset", choices=AUGMENTS)
    image_size: int | None = _f(None, "model input size in pixels; empty = the model's default", min=8, max=1024)
    skip_bad: bool = _f(False, "skip unreadable image files (and count them) instead of stopping")
    exclude: tuple[str, ...] = _f((), "files of a folder or zip left out of every split (never deleted): paths "
                                  "inside it, URL-encoded (spaces and commas escaped), as the Data page's check "
                                  "lists them")
    workers: int | None = _f(None, "data-loading processes; empty = automatic", min=0, max=64)
    device_resident: str = _f("auto", "keep the decoded training images on the training device and crop/flip "
                              "whole batches there: auto = on a CUDA GPU when they fit in a quarter of its free "
                              "memory (augment none or standard); on = always, also on the CPU; off = never",
                              choices=RESIDENT)


@dataclass(frozen=True)
class ModelConfig:
    name: str = _f("lenet", "architecture name from `cvdemo models`")
    pretrained: bool = _f(False, "start from ImageNet weights")
    freeze: str = _f("none", "'backbone' trains the head only; 'until:GROUP' freezes the layer groups up to "
                     "and including GROUP (batch-norm statistics of frozen groups stay fixed)")
    zero_init_residual: bool = _f(False, "ResNets: zero the last batch-norm of each residual branch")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _f(10, "passes over the training set", min=1, max=10_000)
    batch_size: int = _f(16, "images per optimisation step", min=1, max=65_536)
    lr: float = _f(3e-3, "peak learning rate", min=0.0, max=1e6, min_exclusive=True)
    optimizer: str = _f("adam", "optimisation algorithm", choices=OPTIMIZERS)
    momentum: float = _f(0.9, "SGD momentum (and one-cycle's upper momentum)", min=0.0, max=0.999)
    nesterov: bool = _f(False, "SGD with Nesterov momentum")
    weight_decay: float = _f(0.0, "L2 penalty (decoupled for AdamW)", min=0.0, max=1.0)
    schedule: str = _f("cosine", "learning-rate schedule over the whole run", choices=SCHEDULES)
    step_size: int = _f(10, "'step' schedule: epochs between decays", min=1)
    milestones: tuple[int, ...] = _f((), "'multistep' schedule: epochs at which the rate decays")
    gamma: float = _f(0.1, "'step'/'multistep': factor applied at each decay", min=0.0, max=1.0, min_exclusive=True)
    warmup_epochs: float = _f(0.0, "linear warm-up from 0 over this many epochs (not with onecycle)",
                              min=0.0, max=1000)
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing", min=0.0, max=0.5)
    seed: int = _f(0, "random seed for initialisation, shuffling and augmentation", min=0, max=2**31 - 1)
    device: str = _f("auto", "where to train: auto picks cuda, then mps, then cpu", choices=DEVICES)
    # Discriminative fine-tuning (report 000): lower learning rates for the layer groups nearer the input.
    lr_decay: float | None = _f(None, "each layer group below the head gets this factor times the rate "
                                "of the group above it", min=0.0, max=1.0, min_exclusive=True)
    group_lr_mult: tuple[float, ...] = _f((), "explicit learning-rate multiplier per layer group, stem to head "
                                          "(e.g. 0.1,0.125,0.167,0.25,0.5,1)", min=0.0, max=100.0)
    unfreeze_at: tuple[int, ...] = _f((), "gradual unfreezing: at each of these epochs the next frozen layer "
                                      "group (nearest the head first) starts training", min=1)
    mixup: float = _f(0.0, "mixup alpha: blend pairs of images and labels (0 = off)", min=0.0, max=10.0)
    cutmix: float = _f(0.0, "cutmix alpha: paste a box from another image (0 = off; with mixup, "
                       "each batch uses one of the two)", min=0.0, max=10.0)
    decay_norm_bias: bool = _f(True, "apply weight decay to biases and normalisation weights too "
                               "(--no-decay-norm-bias exempts them)")
    clip_grad_norm: float | None = _f(None, "clip the gradient norm to this value", min=0.0, min_exclusive=True)
    accumulate: int = _f(1, "add up gradients over this many batches per optimisation step", min=1, max=1024)
    precision: str = _f("auto", "arithmetic: auto = bf16 mixed precision on CUDA, fp32 elsewhere",
                        choices=PRECISIONS)
    channels_last: bool = _f(False, "channels-last memory layout (faster convolutions on recent GPUs)")
    compile: bool = _f(False, "torch.compile the model (slow start, faster steps on a GPU)")
    early_stop: int | None = _f(None, "stop when the best-model metric has not improved for this many epochs",
                                min=1)
    cache_features: bool = _f(True, "when only the head trains and no augmentation or mixing applies, compute "
                              "the frozen backbone's features once and train the head on them")
    best_metric: str = _f("val_top1", "validation metric that picks best.pt and drives early stopping",
                          choices=BEST_METRICS)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str | None = _f(None, "optional human label for the run")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: Any) -> RunConfig:
        """Parse and validate; unknown keys, wrong types and out-of-range values raise ConfigError."""
        return _parse(cls, raw, "config")

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "the config") -> RunConfig:
        """Parse and validate JSON text; anything malformed raises ConfigError naming `where`."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ConfigError(f"{where} is not UTF-8 text (a binary file?): give a JSON text file shaped "
                                  f"like a run's config.json") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where} is not valid JSON (line {e.lineno}: {e.msg}): fix it, or start from a run's "
                              f"config.json") from None
        except RecursionError:
            raise ConfigError(f"{where} is nested too deeply to be a config: give a JSON object with "
                              f"data, model and train sections") from None
        try:
            return cls.from_dict(raw)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> RunConfig:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
        return cls.from_json(data, f"config file {path}")

    def replace(self, **sections: dict[str, Any] | str | None) -> RunConfig:
        """A copy with some fields changed, validated: `cfg.replace(train={"lr": 0.1})`."""
        raw = self.to_dict()
        for section, values in sections.items():
            if section == "name":
                raw["name"] = values
                continue
            if section not in raw or not isinstance(raw[section], dict):
                raise ConfigError(f"unknown config section '{section}'; use data, model or train")
            raw[section].update(values)
        return RunConfig.from_dict(raw)

    def check(self) -> RunConfig:
        """Cross-field rules that single fields cannot express: the first one broken raises ConfigError."""
        broken = self.cross_field_problems()
        if broken:
            raise ConfigError(broken[0])
        return self

    def cross_field_problems(self) -> list[str]:
        """Every cross-field rule this config breaks, one sentence each (empty when it is consistent)."""
        t, out = self.train, []
        if t.schedule == "multistep" and not t.milestones:
            out.append("the multistep schedule needs milestones (epochs), e.g. --milestones 10,20,30")
        if any(m < 1 or m > t.epochs for m in t.milestones):
            out.append(f"milestones must lie between 1 and the number of epochs ({t.epochs}), "
                       f"got {_short(list(t.milestones))}")
        if t.warmup_epochs >= t.epochs and t.warmup_epochs > 0:
            out.append(f"warm-up ({t.warmup_epochs} epochs) must be shorter than the run ({t.epochs} epochs)")
        freeze = self.model.freeze
        if freeze not in ("none", "backbone") and not (freeze.startswith("until:") and freeze[6:]):
            out.append(f"freeze must be none, backbone or until:GROUP (e.g. until:layer3), got {_short(freeze)}")
        elif freeze != "none" and not self.model.pretrained and self.model.name != "alexnet_skip":
            out.append("freezing layers only makes sense with --pretrained: frozen random layers cannot learn")
        if t.unfreeze_at and freeze == "none":
            out.append("--unfreeze-at needs frozen layers to unfreeze: add --freeze backbone or until:GROUP")
        if t.lr_decay is not None and t.group_lr_mult:
            out.append("give either --lr-decay or --group-lr-mult, not both")
        if t.schedule == "onecycle" and t.warmup_epochs:
            out.append("one-cycle has its own warm-up; leave warmup_epochs at 0")
        return out


def _parse(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        shape = "with data, model and train sections" if cls is RunConfig else "of settings"
        raise ConfigError(f"{where} must be a JSON object {shape} ({{...}}), got {_json_kind(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        raise ConfigError(_unknown_key(unknown[0], list(fields), where))
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        path = f"{where}.{name}" if where != "config" else name
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            values[name] = _parse(hint, value, name)
        else:
            values[name] = _check_value(value, hint, fields[name].metadata, path)
    try:
        obj = cls(**values)
    except TypeError as e:  # pragma: no cover - all fields have defaults
        raise ConfigError(f"{where}: {e}") from None
    return obj.check() if cls is RunConfig else obj


def _unknown_key(key: Any, fields: list[str], where: str) -> str:
    """The sentence for a key no config section has, with a "did you mean" when one is close."""
    close = [ALIASES[key]] if ALIASES.get(key) in fields else \
        difflib.get_close_matches(str(key), fields, n=1, cutoff=0.6) if isinstance(key, str) else []
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key {_short(key)} in {where}: {hint}known keys are {', '.join(fields)}"


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config a user typed: which field, what is wrong, what would be allowed."""
    field: str                        # "train.epochs"; "" for a rule that spans fields
    reason: str                       # "must be at least 1, got -5"
    allowed: str | None = None        # "1 to 10,000" (see `allowed_values`); None when the reason says it

    def __str__(self) -> str:
        text = f"{self.field} {self.reason}" if self.field else self.reason
        return f"{text} (allowed: {self.allowed})" if self.allowed else text


def config_problems(raw: Any) -> list[ConfigProblem]:
    """Every problem in a raw config dict (as a form or a JSON file gives it), not just the first:
    unknown keys, wrong types and out-of-range values field by field, then (when every field is
    fine) the cross-field rules. Empty when `RunConfig.from_dict(raw)` would succeed.

    >>> [str(p) for p in config_problems({"train": {"epochs": -5, "batch_size": 0}})]
    ['train.epochs must be at least 1, got -5 (allowed: 1 to 10,000)', \
'train.batch_size must be at least 1, got 0 (allowed: 1 to 65,536)']
    """
    if not isinstance(raw, dict):
        try:
            RunConfig.from_dict(raw)
        except ConfigError as e:
            return [ConfigProblem("", str(e))]
    problems: list[ConfigProblem] = []
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        if f.name not in raw:
            continue
        value, hint = raw[f.name], hints[f.name]
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            problems += _field_problem(value, hint, f, f.name)
            continue
        if not isinstance(value, dict):
            problems.append(ConfigProblem(f.name, f"must be a JSON object of settings ({{...}}), "
                                                  f"got {_json_kind(value)}"))
            continue
        section_hints = typing.get_type_hints(hint)
        for g in dataclasses.fields(hint):
            if g.name in value:
                problems += _field_problem(value[g.name], section_hints[g.name], g, f"{f.name}.{g.name}")
        known = [g.name for g in dataclasses.fields(hint)]
        problems += [ConfigProblem("", _unknown_key(k, known, f.name)) for k in sorted(set(value) - set(known), key=str)]
    known = [f.name for f in dataclasses.fields(RunConfig)]
    problems += [ConfigProblem("", _unknown_key(k, known, "config")) for k in sorted(set(raw) - set(known), key=str)]
    if problems:
        return problems
    values = {f.name: _parse(hints[f.name], raw[f.name], f.name) if dataclasses.is_dataclass(hints[f.name])
              else _check_value(raw[f.name], hints[f.name], f.metadata, f.name)
              for f in dataclasses.fields(RunConfig) if f.name in raw}
    return [ConfigProblem("", text) for text in RunConfig(**values).cross_field_problems()]


def _field_problem(value: Any, hint: Any, f: dataclasses.Field, path: str) -> list[ConfigProblem]:
    """[] when `value` suits the field, else the one problem `_check_value` names, with the allowed values."""
    try:
        _check_value(value, hint, f.metadata, path)
    except ConfigError as e:
        text = str(e)
        reason = text[len(path) + 1:] if text.startswith(path + " ") else text
        choices = f.metadata.get("choices")
        allowed = None if choices else allowed_values(f.metadata.get("min"), f.metadata.get("max"),
                                                      bool(f.metadata.get("min_exclusive")))
        return [ConfigProblem(path, reason, allowed)]
    return []


def allowed_values(lo: float | None, hi: float | None, min_exclusive: bool = False) -> str | None:
    """A field's range in words: "1 to 10,000", "above 0 up to 0.5", "at least 1"; None when unbounded."""
    if lo is None and hi is None:
        return None
    if hi is None:
        return f"above {_bound(lo)}" if min_exclusive else f"at least {_bound(lo)}"
    if lo is None:
        return f"at most {_bound(hi)}"
    return f"above {_bound(lo)} up to {_bound(hi)}" if min_exclusive else f"{_bound(lo)} to {_bound(hi)}"


def _bound(value: float | None) -> str:
    """A range's end as a person writes it: 10,000 and 1,000,000, not 10000 and 1e+06."""
    assert value is not None
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e12 else f"{value:g}"


def _check_value(value: Any, hint: Any, meta: typing.Mapping[str, Any], path: str) -> Any:
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{path} must not be empty")
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if isinstance(value, str):  # "10,20,30" from a command line or a form
            try:
                value = [item(v) for v in value.replace(" ", "").split(",") if v]
            except ValueError:
                kind = "whole numbers" if item is int else "numbers"
                raise ConfigError(f"{path} must be a comma-separated list of {kind}, got {_short(value)}") from None
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {_short(value)}")
        return tuple(_check_value(v, item, meta, path) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {_short(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{path} must be a whole number, got {_short(value)}")
        value = int(value)
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {_short(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{path} must be a finite number, got {value}")
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be text, got {_short(value)}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{path} must be one of {', '.join(choices)}; got {_short(value)}")
        if not value.strip():
            raise ConfigError(f"{path} must not be empty")
        return value
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
        relation = "greater than" if meta.get("min_exclusive") else "at least"
        raise ConfigError(f"{path} must be {relation} {lo}, got {_number(value)}")
    if hi is not None and value > hi:
        raise ConfigError(f"{path} must be at most {hi}, got {_number(value)}")
    return value


def _number(value: float) -> str:
    """A number for a message: huge ones in scientific notation, not 300 digits."""
    return f"{value:.3g}" if abs(value) >= 1e15 else str(value)


def _short(value: Any) -> str:
    """repr() of a user's value, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number",
             type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def describe_fields(cls: type) -> dict[str, str]:
    """Field name -> help text, for CLI --help and app tooltips."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class FieldInfo:
    """One config field as a form or a CLI needs it: its kind, default and allowed values."""
    name: str
    kind: str                         # "bool", "int", "float", "str", "list" (of ints) or "section"
    optional: bool                    # None is allowed (the field's help says what empty means)
    default: Any                      # for a section: the nested dataclass type
    help: str
    min: float | None
    max: float | None
    min_exclusive: bool
    choices: tuple[str, ...] | None


def field_infos(cls: type) -> list[FieldInfo]:
    """The fields of a config dataclass in declaration order, with their metadata (see `_f`)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint, optional = hints[f.name], False
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional, hint = True, args[0]
        default: Any
        if dataclasses.is_dataclass(hint):
            kind, default = "section", hint
        else:
            kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(hint, "list")
            factory = f.default_factory  # a field has a default or a default factory (see `_f`)
            default = factory() if callable(factory) else f.default
        meta = f.metadata
        out.append(FieldInfo(f.name, kind, optional, default, meta.get("help", ""), meta.get("min"),
                             meta.get("max"), bool(meta.get("min_exclusive")), meta.get("choices")))
    return out
