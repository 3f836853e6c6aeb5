"""Handing settings and results to someone else: the Train form in the URL, and the Runs page's HTML report.
The pure parts (query parameters, settings files, the report itself) live in cvdemo.share and cvdemo.report."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cvdemo.config import RunConfig
from cvdemo.errors import CvdemoError
from cvdemo.runs import RunInfo
from pages.ui import projector
from pages.ui.cached import checkpoint_stamp
from pages.ui.state import KEY_URL_SETTINGS, set_draft

# Query parameters that are not run settings: they stay in the address bar and never reach the form.
NOT_SETTINGS = (projector.PARAM,)


def settings_from_url(models: list[str] | None = None) -> str | None:
    """The first time the Train page sees a link's query parameters, they become the draft (on top of the
    defaults). Returns a one-sentence warning about parameters that could not be used, else None."""
    from cvdemo.share import config_from_query

    params = {k: v for k, v in st.query_params.to_dict().items() if k not in NOT_SETTINGS}
    if not params or params == st.session_state.get(KEY_URL_SETTINGS):
        return None
    shared = config_from_query(params, models=models)
    set_draft(shared.config)
    st.session_state[KEY_URL_SETTINGS] = params
    return shared.message()


def settings_to_url(config: dict[str, Any]) -> dict[str, str]:
    """Put the settings that differ from the defaults into the URL's query parameters; returns them."""
    from cvdemo.share import config_to_query

    try:
        wanted = config_to_query(RunConfig.from_dict(config))
    except CvdemoError:
        return {}
    kept = {k: v for k, v in st.query_params.to_dict().items() if k in NOT_SETTINGS}  # e.g. ?projector=1
    if st.query_params.to_dict() != {**wanted, **kept}:
        st.query_params.from_dict({**wanted, **kept})
    st.session_state[KEY_URL_SETTINGS] = wanted
    return wanted


def share_link(params: dict[str, str]) -> str:
    """The address of this page with these query parameters (relative when the server's is unknown)."""
    from urllib.parse import urlencode

    try:
        base = (st.context.url or "").split("?", 1)[0]
    except Exception:  # pragma: no cover - no browser context (bare mode)
        base = ""
    query = urlencode(params)
    return f"{base}?{query}" if query else base or "(the defaults: no parameters)"


def report_key(found: list[RunInfo]) -> tuple:
    """What a stored report covers: the runs, in order, with the modification times of the checkpoints
    they answer with (best.pt, else last.pt: cvdemo.checkpoint's rule)."""
    return tuple((r.id, checkpoint_stamp(r.path)) for r in found)


def build_report(found: list[RunInfo]) -> bytes:
    """cvdemo.report's HTML for these runs (the same file `cvdemo report` writes), as bytes."""
    from cvdemo.report import build_report as build

    return build([r.path for r in found]).encode("utf-8")
