"""Lessons: a question a teacher asks, answered by two to four runs that differ in one thing.

Each lesson is a JSON file in this folder:

    {"version": 1, "title": ..., "question": ...,
     "recipe": "lenet5-digits",                 # optional: the recipe every arm starts from
     "config": {partial RunConfig},             # optional: changes every arm shares
     "arms": [{"label": "lr 0.0003",            # what differs, as the chart legend names it
               "recipe": ..., "config": {...}}, # optional per arm: its own recipe and changes
              ...],                             # two to four arms
     "watch": {"curves": ["loss", "top-1 accuracy", "gradients"], "page": "runs", "note": "what to look at"},
     "measured": {"seconds": 41.2, "on": "digits, 2 CPU cores", "command": "cvdemo lesson run NAME"},
     "report": "000",                           # optional: the student report it reproduces at small scale
     "data_note": "what the original used ..."} # optional: the data (and downloads) the full experiment needs

Each arm's configuration is validated as a full RunConfig (`cvdemo.config`), so a typo in a lesson is
one sentence naming the lesson and the arm. What the runs showed is not written here: it is measured
from the finished runs by `cvdemo.lesson_results.lesson_outcome`.

    lesson = load_lesson("learning-rate")
    for arm in lesson.arms:
        print(arm.label, arm.config.train.lr)

On other data (`lesson.on_data("cifar10.zip")`) every arm trains on at most OTHER_DATA_LIMITS images
(training, and validation and test each) unless the lesson limits them further or the caller says
otherwise: about the size of the digits' splits, so that a lesson takes about its measured time there too.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError
from cvdemo.recipes import list_recipes, load_recipe, read_named_json

__all__ = ["Arm", "Lesson", "LESSON_DIR", "CURVES", "PAGES", "OTHER_DATA_LIMITS", "Limit", "list_lessons",
           "load_lesson", "parse_lesson"]

LESSON_DIR = Path(__file__).parent
LESSON_KEYS = {"version", "title", "question", "recipe", "config", "arms", "watch", "measured", "report",
               "data_note"}
ARM_KEYS = {"label", "recipe", "config"}
WATCH_KEYS = {"curves", "page", "note"}
MEASURED_KEYS = {"seconds", "on", "command"}
# the curve names pages/ui/charts.py draws, and "gradients": the per-layer-group gradient heat maps
CURVES = ("loss", "top-1 accuracy", "learning rate", "gradients")
PAGES = ("runs", "evaluate", "embeddings", "explain", "train")  # where a lesson can send the class next
VERSION = 1
MAX_LABEL = 32
# (training images, validation and test images each) per arm on data other than the lesson's own: about the
# digits' splits (1,078 training, 359 validation, 360 test images), so a lesson takes about its digits time
# on a 50,000-image CIFAR-10 zip too.
OTHER_DATA_LIMITS = (1000, 400)
# A limit asked for: a number of images, None for all of them, or "auto" (the lesson's own limit, capped by
# OTHER_DATA_LIMITS on other data).
Limit: TypeAlias = int | None | Literal["auto"]


@dataclass(frozen=True)
class Arm:
    """One run of a lesson: `label` says what differs ("lr 0.0003"); `config` is the full run config."""
    label: str
    config: RunConfig


@dataclass(frozen=True)
class Lesson:
    name: str
    version: int
    title: str
    question: str
    arms: tuple[Arm, ...]
    curves: tuple[str, ...]
    page: str
    note: str
    seconds: float | None       # measured wall time of all arms together (None: not measured yet)
    measured_on: str
    command: str
    report: str = ""            # the student report ("000".."004") this lesson reproduces at small scale
    data_note: str = ""         # what data (and downloads) the full experiment needs, and how to run on it

    def on_data(self, data: str | None = None, limit_train: Limit = "auto", limit_test: Limit = "auto") -> Lesson:
        """This lesson with every arm on `data` (a built-in name, a folder or a zip; None: the lesson's own).

        A limit is a number of images per arm (training; validation and test each), None for all, or "auto":
        the arm's own limit, and on data other than the arm's own at most OTHER_DATA_LIMITS. A number or
        None replaces the lesson's own limit (`cvdemo lesson run overfitting --limit-train 500`)."""
        arms = []
        for arm in self.arms:
            other = data is not None and data != arm.config.data.source
            changes: dict[str, Any] = {"source": data} if other else {}
            for key, asked, cap in (("limit_train", limit_train, OTHER_DATA_LIMITS[0]),
                                    ("limit_test", limit_test, OTHER_DATA_LIMITS[1])):
                own = getattr(arm.config.data, key)
                if asked != "auto":
                    changes[key] = asked
                elif other:
                    changes[key] = cap if own is None else min(own, cap)
            arms.append(Arm(arm.label, arm.config.replace(data=changes) if changes else arm.config))
        return dataclasses.replace(self, arms=tuple(arms))

    def configs_for(self, data: str | None = None) -> list[tuple[str, RunConfig]]:
        """(label, config) per arm, on other data when `data` is given (limited as `on_data` says)."""
        return [(a.label, a.config) for a in self.on_data(data).arms]

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "title": self.title, "question": self.question,
                "arms": [{"label": a.label, "config": a.config.to_dict()} for a in self.arms],
                "watch": {"curves": list(self.curves), "page": self.page, "note": self.note},
                "measured": {"seconds": self.seconds, "on": self.measured_on, "command": self.command},
                "report": self.report or None, "data_note": self.data_note or None}


# The order a class meets them in (Home's cards, `cvdemo lesson list`); any other lesson file comes after.
TEACHING_ORDER = ("learning-rate", "optimizers", "batch-size", "overfitting", "transfer", "residual")


def list_lessons() -> list[str]:
    """The shipped lessons' names (their file names without .json), in teaching order."""
    names = sorted(p.stem for p in LESSON_DIR.glob("*.json"))
    return sorted(names, key=lambda n: TEACHING_ORDER.index(n) if n in TEACHING_ORDER else len(TEACHING_ORDER))


def load_lesson(name: str) -> Lesson:
    """Read and validate a lesson by name (or a path to a lesson file); ConfigError in one sentence if not."""
    path, raw = read_named_json("lesson", name, LESSON_DIR, "cvdemo lesson list", list_lessons())
    return parse_lesson(raw, path.stem)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied one config section deep (a section's keys override, the rest stay)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _text(raw: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(f"{where} needs '{key}' as non-empty text")
    return value.strip()


def _object(value: Any, what: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a JSON object ({{...}})")
    unknown = sorted(set(value) - keys, key=str)
    if unknown:
        raise ConfigError(f"{what} has an unknown key '{unknown[0]}' (known: {', '.join(sorted(keys))})")
    return value


def _report(raw: dict[str, Any], where: str) -> str:
    """The lesson's "report": one of the student reports a recipe reproduces ("000".."004"), or ""."""
    if "report" not in raw:
        return ""
    reports = sorted({r for r in (load_recipe(n).report for n in list_recipes()) if r.isdigit()})
    if raw["report"] not in reports:
        raise ConfigError(f"{where}'s report must be one of the reports the recipes reproduce "
                          f"({', '.join(reports)}); got {raw['report']!r}")
    return str(raw["report"])


def _recipe_config(name: Any, where: str) -> dict[str, Any]:
    if not isinstance(name, str) or name not in list_recipes():
        raise ConfigError(f"{where} names no recipe '{name}'; `cvdemo recipes` lists them")
    return load_recipe(name).config.to_dict()


def parse_lesson(raw: Any, name: str) -> Lesson:
    """Validate a lesson's parsed JSON (see the module docstring) into a Lesson."""
    where = f"lesson {name}"
    raw = _object(raw, where, LESSON_KEYS)
    if raw.get("version", VERSION) != VERSION:
        raise ConfigError(f"{where} has version {raw.get('version')!r}; this cvdemo reads version {VERSION}")
    title, question = _text(raw, "title", where), _text(raw, "question", where)
    shared = RunConfig().to_dict()
    if "recipe" in raw:
        shared = _recipe_config(raw["recipe"], where)
    shared = _merge(shared, _object(raw.get("config", {}), f"{where}'s config", {"data", "model", "train"}))
    arms_raw = raw.get("arms")
    if not isinstance(arms_raw, list) or not 2 <= len(arms_raw) <= 4:
        count = len(arms_raw) if isinstance(arms_raw, list) else "no list of"
        raise ConfigError(f"{where} needs two to four arms to compare, got {count} arms")
    arms: list[Arm] = []
    for i, arm_raw in enumerate(arms_raw, 1):
        arm_raw = _object(arm_raw, f"{where}'s arm {i}", ARM_KEYS)
        label = _text(arm_raw, "label", f"{where}'s arm {i}")
        if len(label) > MAX_LABEL:
            raise ConfigError(f"{where}'s arm {i} has a label of {len(label)} characters; a legend needs at most "
                              f"{MAX_LABEL}, naming only what differs (like 'lr 0.0003')")
        if label in {a.label for a in arms}:
            raise ConfigError(f"{where} has two arms labelled '{label}'; each label must say what differs")
        base = _recipe_config(arm_raw["recipe"], f"{where}'s arm '{label}'") if "recipe" in arm_raw else shared
        if "recipe" in arm_raw:  # the lesson's shared changes still apply on top of the arm's own recipe
            base = _merge(base, raw.get("config", {}))
        changes = _object(arm_raw.get("config", {}), f"{where}'s arm '{label}' config", {"data", "model", "train"})
        try:
            config = RunConfig.from_dict({**_merge(base, changes), "name": label})
        except ConfigError as e:
            raise ConfigError(f"{where}, arm '{label}': {e}") from None
        arms.append(Arm(label, config))
    watch = _object(raw.get("watch", {}), f"{where}'s watch", WATCH_KEYS)
    curves = watch.get("curves", ["loss", "top-1 accuracy"])
    if not isinstance(curves, list) or not curves or any(c not in CURVES for c in curves):
        raise ConfigError(f"{where}'s watch.curves must be a list drawn from {', '.join(CURVES)}; got {curves!r}")
    page = watch.get("page", "runs")
    if page not in PAGES:
        raise ConfigError(f"{where}'s watch.page must be one of {', '.join(PAGES)}; got {page!r}")
    measured = _object(raw.get("measured", {}), f"{where}'s measured", MEASURED_KEYS)
    seconds = measured.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0):
        raise ConfigError(f"{where}'s measured.seconds must be a positive number of seconds; got {seconds!r}")
    return Lesson(name=name, version=VERSION, title=title, question=question, arms=tuple(arms),
                  curves=tuple(curves), page=page, note=_text(watch, "note", f"{where}'s watch", required=False),
                  seconds=float(seconds) if seconds is not None else None,
                  measured_on=_text(measured, "on", f"{where}'s measured", required=False),
                  command=_text(measured, "command", f"{where}'s measured", required=False),
                  report=_report(raw, where), data_note=_text(raw, "data_note", where, required=False))
