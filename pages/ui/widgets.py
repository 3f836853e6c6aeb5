"""Widgets the pages share: messages (errors, flash, run states), run pickers and the config form's fields."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import streamlit as st

from cvdemo import runs
from cvdemo.config import ConfigProblem, allowed_values, field_infos
from cvdemo.errors import CvdemoError
from cvdemo.health import Health
from cvdemo.public_names import public_text
from cvdemo.run_list import run_labels
from cvdemo.runs import RunInfo
from pages.ui.state import KEY_FLASH, form_key

# Material icons ship with Streamlit, so they show on a laptop with no emoji font too.
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:",
               "completed": ":material/check_circle:", "diverged": ":material/trending_up:",
               "cancelled": ":material/stop_circle:", "failed": ":material/error:", "interrupted": ":material/bolt:"}

# What every table shows in a cell with no value (a cancelled run's test top-1): st.dataframe's
# `placeholder`, so number columns stay numbers (sorted and formatted as such) and no "None" is shown.
MISSING = "—"

# st.dataframe column formats for the accuracy columns of run tables.
PERCENT_COLUMNS = {name: st.column_config.NumberColumn(format="percent")
                   for name in ("val top-1", "best val top-1", "test top-1", "test top-2", "test top-5")}


# -- messages ------------------------------------------------------------------------------------

def plain(text: str) -> str:
    """Text shown as written: st.error and friends read Markdown, which would turn `cats/*.jpg and
    dogs/*.jpg` into italics and a class named `<b>` into markup."""
    return re.sub(r"([\\`*_{}\[\]<>#|~$])", r"\\\1", str(text))


def show_error(error: CvdemoError) -> None:
    """A user-facing error as one readable sentence on the page; a path into this computer's folders
    (runs, uploads, temporary files, the Python installation) is named as the person knows it."""
    st.error(plain(public_text(error)), icon=":material/warning:")


def show_failure(error: Exception, doing: str) -> None:
    """Any failure as one sentence: a CvdemoError as it is, anything else as what was being done and why."""
    if isinstance(error, CvdemoError):
        show_error(error)
    else:
        reason = (public_text(error).strip().splitlines() or [type(error).__name__])[0][:200]
        show_error(CvdemoError(f"{doing} failed: {reason}"))


def flash(message: str | None = None) -> None:
    """With a message: keep it for the next run. Without: show the kept message once."""
    if message is not None:
        st.session_state[KEY_FLASH] = message
    elif KEY_FLASH in st.session_state:
        st.success(st.session_state.pop(KEY_FLASH), icon=":material/check:")


def show_run_state(r: RunInfo, health: Health | None = None) -> None:
    """The run's state in words: why it diverged, why it failed, or how it finished; with `health` (the
    verdict on the run) beside it, unless the state already says it (diverged). A finished run is green
    only when its verdict is not a problem: "finished" alone is no success when the network did not learn.
    The run's message is shown without server paths (a failed run's names the user's file instead)."""
    r = dataclasses.replace(r, message=public_text(r.message))
    if r.state == "completed":
        good = health is None or health.severity in ("ok", "info")
        (st.success if good else st.info)(f"Finished: {r.message}.", icon=STATE_ICONS["completed"])
    elif r.state == "diverged":
        st.error(f"The training diverged: {r.message}. The loss blew up to a value no further step can "
                 "recover from — this is what a learning rate that is too high does.", icon=STATE_ICONS["diverged"])
    elif r.state == "failed":
        st.error(f"The run failed: {r.message}", icon=STATE_ICONS["failed"])
    elif r.state == "cancelled":
        st.warning("The run was cancelled; its last finished epoch is saved.", icon=STATE_ICONS["cancelled"])
    elif r.state == "interrupted":
        st.warning(r.message, icon=STATE_ICONS["interrupted"])
    else:
        st.info(f"{r.state.capitalize()}: {r.message or 'starting'}", icon=STATE_ICONS.get(r.state))
    if health is not None and not (r.state == "diverged" and health.verdict == "diverged"):
        show_health(health, active=r.state in ("queued", "running"))


HEALTH_ICONS = {"diverged": ":material/trending_up:", "unstable": ":material/ssid_chart:",
                "did not learn": ":material/block:", "overfitting": ":material/call_split:",
                "healthy": ":material/thumb_up:"}


def show_health(health: Health, active: bool = False) -> None:
    """The verdict on a run (cvdemo.health) beside its state: red when it diverged or is unstable, amber
    when it did not learn or overfits, green when healthy. While the run trains only a problem is shown;
    "too early" never is. The diverged state already says it blew up: only the suggestion is added then."""
    if health.verdict == "too early" or (active and health.severity == "ok"):
        return
    title = f"**{'Healthy' if health.verdict == 'healthy' else health.verdict.capitalize()}.**"
    text = f"{title} {plain(health.text)}"
    show = {"error": st.error, "warning": st.warning, "ok": st.success}[health.severity]
    show(text, icon=HEALTH_ICONS.get(health.verdict))


def no_trained_runs() -> None:
    """What the analysis pages say when no run has weights yet."""
    st.info("No trained run yet. Press **Start** on the *Digits with LeNet* lesson on Home (it trains in under a "
            "minute), or set up a run on Train; it shows up here once it has finished an epoch.",
            icon=":material/info:")


def show_problems(problems: list[ConfigProblem], doing: str) -> None:
    """Every problem of a config form in one message: each bad field by its form label, what is wrong
    with it and the values it allows."""
    lines = []
    for p in problems:
        label = p.field.rsplit(".", 1)[-1].replace("_", " ")
        reason = public_text(p.reason)
        text = f"**{plain(label)}** {plain(reason)}" if p.field else plain(reason)
        lines.append(f"- {text}" + (f" — allowed: {plain(p.allowed)}" if p.allowed else ""))
    st.error(f"Cannot {doing} until {'this is' if len(problems) == 1 else f'these {len(problems)} are'} "
             "fixed:\n" + "\n".join(lines), icon=":material/warning:")


# -- pickers -------------------------------------------------------------------------------------

def run_picker(found: list[RunInfo], key: str, label: str = "Run") -> RunInfo:
    """A selectbox of runs (the newest completed one first time round); returns the chosen run."""
    by_id = {r.id: r for r in found}
    if st.session_state.get(key) not in by_id:
        done = [r for r in found if r.state == "completed"]
        st.session_state[key] = (done or found)[0].id

    labels = run_labels(found)  # name, or model, data and the settings that set it apart

    def name(run_id: str) -> str:
        r = by_id[run_id]
        score = f"test top-1 {r.test_top1:.1%}" if r.test_top1 is not None else r.state
        return f"{labels[run_id]} · {score}"

    return by_id[st.selectbox(label, list(by_id), format_func=name, key=key)]


def freeze_choices(model_name: str) -> dict[str, str]:
    """What `model.freeze` can be for a model -> words for it: nothing, the groups up to one of them,
    or everything but the head."""
    from cvdemo.models import get_spec  # imports torch: not on Home

    groups = [g for g, _ in get_spec(model_name).groups]
    return {"none": "nothing: every layer learns",
            **{f"until:{g}": f"the layers up to {g}" for g in groups[:-2]},
            "backbone": "everything but the new head"}


# -- the config form -----------------------------------------------------------------------------

def _float_step(value: float, info: Any) -> float:
    """The number input's +/- step: the value's power of ten, or a small step near 0."""
    if value and value > 0:
        return 10.0 ** math.floor(math.log10(value))
    return 0.01 if (info.max or 1) <= 1 else 0.1


def field_widget(section: str, info: Any, value: Any, choices: list[str] | None = None) -> Any:
    """One widget for one config field, chosen from its kind and metadata (help, range, choices).

    Returns a raw value for RunConfig.from_dict (which validates it): lists as comma-separated text.
    """
    key, label, help_text = form_key(section, info.name), info.name.replace("_", " "), info.help or None
    options = list(choices or info.choices or [])
    if info.kind == "bool":
        return st.checkbox(label, value=bool(value), key=key, help=help_text)
    if options:
        if value not in options:
            options = [value, *options]
        shown = runs.data_display_name if (section, info.name) == ("data", "source") else str  # never a path
        return st.selectbox(label, options, index=options.index(value), key=key, help=help_text,
                            format_func=lambda v: shown(str(v)))
    if info.kind in ("int", "float"):
        # No min_value/max_value: the browser would refuse an out-of-range number with only a hover
        # tooltip, and Start would seem to do nothing. The core checks the range and the form says why.
        is_int = info.kind == "int"
        cast = int if is_int else float
        allowed = allowed_values(info.min, info.max, info.min_exclusive)
        if allowed:
            help_text = f"{help_text or ''} (allowed: {allowed})".strip()
        step = 1 if is_int else _float_step(value, info)
        return st.number_input(label, value=None if value is None else cast(value), step=step, key=key,
                               help=help_text, format=None if is_int else "%g",
                               placeholder="automatic" if info.optional else None)
    if info.kind == "list":
        text = ", ".join(str(v) for v in value or ())
        return st.text_input(label, text, key=key, help=f"{help_text or ''} (comma-separated)", placeholder="none")
    text = st.text_input(label, value or "", key=key, help=help_text,
                         placeholder="optional" if info.optional else None)
    return (text.strip() or None) if info.optional else text


def config_section(section: str, cls: type, values: dict, *, primary: tuple[str, ...],
                   choices: dict[str, list[str]] | None = None) -> dict:
    """Widgets for every field of a config dataclass: the `primary` ones in view, the rest in an expander
    (so fields the core adds later appear without touching the page). Returns {field: raw value}."""
    infos = field_infos(cls)
    choices = choices or {}
    out = {}
    for group in ([f for f in infos if f.name in primary], [f for f in infos if f.name not in primary]):
        if not group:
            continue
        box = st.container() if group[0].name in primary else st.expander(f"More {section} settings")
        with box:
            cols = st.columns(2)
            for i, info in enumerate(group):
                with cols[i % 2]:
                    out[info.name] = field_widget(section, info, values.get(info.name, info.default),
                                                  choices.get(info.name))
    return out
