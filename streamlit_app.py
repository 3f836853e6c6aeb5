"""cvdemo app entry point: a router only. Each page lives in pages/."""

from pathlib import Path

import streamlit as st

from cvdemo import spare
from cvdemo.allocator import tune_cpu_allocator
from pages.ui import projector

tune_cpu_allocator()  # the app evaluates and explains in its own process (see cvdemo.allocator)

# A local file, not a :material/...: icon: Streamlit fetches those from fonts.gstatic.com, and an
# offline app asks no outside server for anything (tests/browser/test_offline_browser.py).
ICON = Path(__file__).parent / "pages" / "ui" / "favicon.svg"

st.set_page_config(page_title="cvdemo", page_icon=str(ICON), layout="wide")

pages = {
    "Start": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Prepare": [st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
                st.Page("pages/model.py", title="Model", icon=":material/account_tree:")],
    "Learn": [st.Page("pages/train.py", title="Train", icon=":material/monitoring:")],
    "Understand": [st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
                   st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
                   st.Page("pages/explain.py", title="Explain", icon=":material/visibility:")],
    "Use": [st.Page("pages/compare.py", title="Runs", icon=":material/table_view:"),
            st.Page("pages/classify.py", title="Classify", icon=":material/image_search:")],
    "Play": [st.Page("pages/draw.py", title="Draw", icon=":material/draw:")],
}
page = st.navigation(pages, expanded=True)
projector.sidebar_toggle()  # larger type and curves first, for a classroom (also ?projector=1)
page.run()
# After the page is drawn: a spare training process imports torch at idle priority, so that the next
# Start trains without waiting for those imports (see cvdemo.spare).
spare.keep_ready()
