"""Recipes: versioned, named configurations that redo the reports' experiments in one command.

Each recipe is a JSON file in `cvdemo/recipe_files/`:

    {"version": 1, "title": ..., "report": ..., "description": ...,
     "device": "cpu" | "gpu",                 # where it is meant to run in reasonable time
     "data_required": "what to pass as --data" (only when the data cannot be downloaded),
     "lr_find": true (run the learning-rate finder first and train at its suggestion),
     "sweep": {"model": [...]} (the default grid of `cvdemo sweep --recipe`),
     "config": {partial RunConfig}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError

RECIPE_DIR = Path(__file__).parent / "recipe_files"
RECIPE_KEYS = {"version", "title", "report", "description", "device", "data_required", "lr_find", "sweep", "config"}


@dataclass(frozen=True)
class Recipe:
    name: str
    version: int
    title: str
    report: str
    description: str
    device: str
    config: RunConfig
    data_required: str | None = None
    lr_find: bool = False
    sweep: dict[str, list[Any]] = field(default_factory=dict)

    def config_for(self, data: str | None = None) -> RunConfig:
        """The recipe's configuration on the given data (required when the recipe names none)."""
        if data is None and self.data_required:
            raise ConfigError(f"recipe {self.name} needs --data: {self.data_required}")
        return self.config.replace(data={"source": data}) if data is not None else self.config

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "title": self.title, "report": self.report,
                "description": self.description, "device": self.device, "data_required": self.data_required,
                "lr_find": self.lr_find, "sweep": self.sweep, "config": self.config.to_dict()}


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.json"))


def read_named_json(kind: str, name: str, folder: Path, command: str, names: list[str]) -> tuple[Path, Any]:
    """The JSON of a shipped file named `name` in `folder` (or of the path `name` ending in .json), and its
    path; ConfigError in one sentence when it is missing (naming `command`, which lists `names`) or not
    valid JSON. Shared by recipes and lessons."""
    path = Path(name) if name.endswith(".json") else folder / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"no {kind} named '{name}'; `{command}` lists them: {', '.join(names)}")
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" (line {e.lineno}: {e.msg})" if isinstance(e, json.JSONDecodeError) else ""
        raise ConfigError(f"{kind} {path.name} is not valid JSON{where}") from None


def load_recipe(name: str) -> Recipe:
    """Read and validate a recipe by name (or a path to a recipe file)."""
    path, raw = read_named_json("recipe", name, RECIPE_DIR, "cvdemo recipes", list_recipes())
    unknown = sorted(set(raw) - RECIPE_KEYS)
    if unknown:
        raise ConfigError(f"recipe {path.name} has an unknown key '{unknown[0]}'")
    try:
        config = RunConfig.from_dict({**raw.get("config", {}), "name": path.stem})
    except ConfigError as e:
        raise ConfigError(f"recipe {path.name}: {e}") from None
    return Recipe(name=path.stem, version=int(raw.get("version", 1)), title=raw.get("title", path.stem),
                  report=str(raw.get("report", "")), description=raw.get("description", ""),
                  device=raw.get("device", "cpu"), config=config, data_required=raw.get("data_required"),
                  lr_find=bool(raw.get("lr_find", False)), sweep=dict(raw.get("sweep", {})))
