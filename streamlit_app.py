"""cvdemo app entry point: a router only. Each page lives in pages/."""

import streamlit as st

st.set_page_config(page_title="cvdemo", page_icon=":material/psychology:", layout="wide")

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
}
st.navigation(pages, expanded=True).run()
