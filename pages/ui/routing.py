"""Make streamlit_app.py route every request, even a first one that names a page."""

from __future__ import annotations

import streamlit as st


def use_the_router() -> None:
    """Streamlit runs a folder named pages/ beside the entry script as old-style pages until the entry
    script has called st.navigation once in this server process: a browser whose first request is
    /train on a fresh server would get that page without the router, the wide layout or the sidebar
    sections. Leave that mode and rerun, so that streamlit_app.py routes the request."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a Streamlit without the old mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()
