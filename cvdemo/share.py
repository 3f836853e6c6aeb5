"""Run settings as URL query parameters, so that a link hands out a Train-page setup.

    config_to_query(cfg)          {"model": "resnet18", "lr": "0.01", "milestones": "10,20"}
    shared = config_from_query({"model": "resnet18", "lr": "oops"})
    shared.config                 the defaults with every usable setting of the link applied
    shared.problems               ["lr must be a number, got 'oops'"]; shared.message() is one sentence

Only settings that differ from the defaults go into a link, so links stay short. Keys are the
config field names (`lr`, `batch_size`, `augment`, ...), with `model` for the architecture, `data`
for the data source and `name` for the run's label; `train.lr`-style dotted keys are read too.
Data uploaded in the app travels as `data=upload:<stored name>` (e.g. `upload:upload-0123456789abcdef.zip`),
never as the server path it is stored at; it is found again only among this runs folder's uploads.
A settings file is the other way to hand them out: `config_json` writes the shape of a run's
config.json (what `cvdemo train --config` reads), `config_from_json` reads one back.
Pure functions, no Streamlit: the app's pages call them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.config import DataConfig, FieldInfo, ModelConfig, RunConfig, TrainConfig, _parse, field_infos
from cvdemo.errors import ConfigError

SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
SHORT = {("model", "name"): "model", ("data", "source"): "data"}
MAX_PARAMS = 200        # a link with more parameters than the config has fields is not ours
MAX_VALUE = 1000        # characters; longer values are refused, not parsed
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
UPLOAD = "upload:"      # a data source stored under <runs root>/uploads/, by its stored name
STORED_NAME = re.compile(r"(upload-[0-9a-f]{16}\.zip|images-[0-9a-f]{16})")  # cvdemo.uploads' names


def _uploads_folder() -> Path:
    return runs.default_root().expanduser().resolve() / runs.UPLOADS


def source_to_query(source: str) -> str:
    """A data source as a link carries it: an upload by its stored name (`upload:…`), anything else as it is."""
    path = Path(source).expanduser()
    if path.is_absolute() and STORED_NAME.fullmatch(path.name) and path.resolve().parent == _uploads_folder():
        return UPLOAD + path.name
    return source


def source_from_query(text: str) -> str:
    """The data source a link's `data=` names: an `upload:…` back to its file in this runs folder's uploads
    (ConfigError when there is no such upload here), anything else as it is."""
    if not text.startswith(UPLOAD):
        return text
    name = text[len(UPLOAD):]
    path = _uploads_folder() / name
    if not STORED_NAME.fullmatch(name) or not path.exists():
        raise ConfigError(f"names an upload that is not on this computer ({name[:40]!r}): upload the data again "
                          "on the Data page")
    return str(path)


def _infos() -> dict[tuple[str, str], FieldInfo]:
    return {(section, info.name): info for section, cls in SECTIONS.items() for info in field_infos(cls)}


def query_key(section: str, name: str) -> str:
    """The query key of a config field: its short alias, its own name, or section.name when two sections
    share the name."""
    if (section, name) in SHORT:
        return SHORT[(section, name)]
    owners = [s for s, cls in SECTIONS.items() if name in {i.name for i in field_infos(cls)}]
    clash = len(owners) > 1 or name in ("name", *SHORT.values())
    return f"{section}.{name}" if clash else name


def _keys() -> dict[str, tuple[str, str]]:
    """Every accepted query key -> (section, field), dotted forms included."""
    keys = {}
    for section, name in _infos():
        keys[query_key(section, name)] = (section, name)
        keys[f"{section}.{name}"] = (section, name)
    return keys


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def config_to_query(config: RunConfig) -> dict[str, str]:
    """The settings of `config` that differ from the defaults, as query parameters (text values)."""
    raw, defaults = config.to_dict(), RunConfig().to_dict()
    out: dict[str, str] = {}
    for section in SECTIONS:
        for name, value in raw[section].items():
            if _text(value) != _text(defaults[section][name]):
                text = _text(value)
                out[query_key(section, name)] = source_to_query(text) if (section, name) == ("data", "source") else text
    if config.name:
        out["name"] = config.name
    return out


def _value(text: str, info: FieldInfo) -> Any:
    """Query text -> the JSON-like value RunConfig.from_dict validates (ConfigError when it cannot be)."""
    t = text.strip()
    if t == "" and info.optional:
        return None
    if info.kind == "bool":
        if t.lower() in TRUE:
            return True
        if t.lower() in FALSE:
            return False
        raise ConfigError(f"must be true or false, got {t[:40]!r}")
    if info.kind == "int":
        try:
            return int(t)
        except ValueError:
            raise ConfigError(f"must be a whole number, got {t[:40]!r}") from None
    if info.kind == "float":
        try:
            return float(t)
        except ValueError:
            raise ConfigError(f"must be a number, got {t[:40]!r}") from None
    return t  # text, and lists as comma-separated text (the config parser splits them)


@dataclass
class SharedConfig:
    """What a link asked for: the config it produced, and what in it could not be used."""
    config: RunConfig
    applied: dict[str, str] = field(default_factory=dict)   # the query parameters that were used
    problems: list[str] = field(default_factory=list)        # one short clause per parameter left out
    conflict: str | None = None                              # why the usable settings did not fit together

    def message(self) -> str | None:
        """One sentence for the page, or None when everything in the link was used."""
        if self.conflict:
            return f"The settings in this link do not fit together ({self.conflict}), so the defaults are shown."
        if not self.problems:
            return None
        shown = "; ".join(self.problems[:4]) + ("; and more" if len(self.problems) > 4 else "")
        return f"Some settings in this link could not be used and keep their defaults: {shown}."


def config_from_query(params: Mapping[str, Any], base: RunConfig | None = None, *,
                      models: list[str] | None = None,
                      ignore: tuple[str, ...] = ("embed", "embed_options")) -> SharedConfig:
    """`base` (default: the defaults) with the link's settings applied, each validated on its own.

    A value that is not valid for its field, or a key that names no field, is left out and reported;
    when the usable settings still do not fit together (say freeze without pretrained), none of them
    is used and that is reported. `params` values may be text or lists of text (the last one counts).
    `models`: the architecture names to accept (cvdemo.models.list_models()); None accepts any.
    """
    base = base or RunConfig()
    infos, keys = _infos(), _keys()
    raw = base.to_dict()
    applied: dict[str, str] = {}
    problems: list[str] = []
    items = [(k, v) for k, v in params.items() if k not in ignore]
    if len(items) > MAX_PARAMS:
        return SharedConfig(base, {}, [f"the link has {len(items)} settings, more than a run has"])
    for key, value in items:
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else ""
        text = str(value)
        if key == "name":
            raw["name"] = text.strip()[:MAX_VALUE] or None
            applied[key] = text
            continue
        if key not in keys:
            problems.append(f"there is no setting called {key[:40]!r}")
            continue
        if len(text) > MAX_VALUE:
            problems.append(f"{key} is longer than {MAX_VALUE} characters")
            continue
        section, name = keys[key]
        try:
            given = source_from_query(text.strip()) if (section, name) == ("data", "source") else text
            candidate = {**raw[section], name: _value(given, infos[(section, name)])}
            _check_field(section, name, candidate[name])
            if (section, name) == ("model", "name") and models is not None and candidate[name] not in models:
                raise ConfigError(f"model {text[:40]!r} is not an architecture cvdemo knows (see the Model page)")
        except ConfigError as e:
            message = str(e)
            problems.append(message if message.startswith(key) else f"{key} {message}")
            continue
        raw[section] = candidate
        applied[key] = text
    try:
        config = RunConfig.from_dict(raw)
    except ConfigError as e:
        return SharedConfig(base, {}, problems, conflict=str(e))
    return SharedConfig(config, applied, problems)


def _check_field(section: str, name: str, value: Any) -> None:
    """Validate one field's value on its own (type, range, choices), as RunConfig.from_dict would."""
    try:
        _parse(SECTIONS[section], {name: value}, section)
    except ConfigError as e:
        # "train.lr must be ..." -> "lr must be ..." in the key a link uses
        text = str(e)
        prefix = f"{section}.{name}"
        raise ConfigError(text.replace(prefix, query_key(section, name), 1)) from None


def config_json(config: dict[str, Any]) -> str:
    """A config dict (RunConfig.to_dict's shape) as a settings file: indented JSON, newline at the end."""
    return json.dumps(config, indent=2) + "\n"


def config_from_json(name: str, data: bytes) -> RunConfig:
    """A settings file's bytes (a run's config.json, or config_json's output) -> RunConfig.

    ConfigError in one sentence when `name` is not JSON or its settings are invalid."""
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ConfigError(f"{name} is not a JSON settings file: give a run's config.json or a file saved "
                          "with Download these settings") from None
    return RunConfig.from_dict(raw)
