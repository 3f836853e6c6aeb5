"""Projector mode: larger type, the Train page's curves first and full width, fewer controls in view.

A toggle in the sidebar of every page, and the URL parameter `?projector=1` (a teacher can bookmark it).
The mode lives in the session; the parameter turns it on the first time a page sees it.
"""

import streamlit as st

KEY = "projector"        # session key: the mode is on
PARAM = "projector"      # URL query parameter: ?projector=1 turns it on

# Larger type everywhere; the page uses the whole width of the screen; headings and metrics grow with it
# (a metric's value and label need !important, and the value's inner text element must inherit it: Streamlit
# sizes that element itself, 23 px in projector mode without this, measured in Chromium).
CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 20px; }
[data-testid="stMainBlockContainer"] { max-width: 100%; padding-left: 2.5rem; padding-right: 2.5rem; padding-top: 2rem; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li, [data-testid="stCaptionContainer"] {
  font-size: 1.15rem; }
[data-testid="stMetricValue"] { font-size: 2.6rem !important; }
[data-testid="stMetricValue"] * { font-size: inherit !important; }
[data-testid="stMetricLabel"] p { font-size: 1.1rem !important; }
h1 { font-size: 2.8rem !important; }
</style>
"""


def enabled() -> bool:
    """Whether projector mode is on in this session (the URL parameter turns it on the first time)."""
    if KEY not in st.session_state:
        st.session_state[KEY] = st.query_params.get(PARAM, "") in ("1", "true", "on", "yes")
    return bool(st.session_state[KEY])


def sidebar_toggle() -> None:
    """The switch in the sidebar; when on, the page's type grows (injected once per run of the page).
    The URL keeps `?projector=1` while it is on, so a reload or a bookmark opens in the same mode."""
    enabled()
    on = st.sidebar.toggle("Projector mode", key=KEY, help="larger type, curves first and full width")
    if on:
        st.html(CSS)
        if st.query_params.get(PARAM) != "1":
            st.query_params[PARAM] = "1"
    elif PARAM in st.query_params:
        del st.query_params[PARAM]


def switch_page(page: str) -> None:
    """st.switch_page that keeps projector mode: a switch from a button (a lesson's Start on Home) drops the
    URL's parameters, and the Train page came up with the mode off (a browser test shows it; AppTest does not)."""
    st.switch_page(page, query_params={PARAM: "1"} if enabled() else None)
