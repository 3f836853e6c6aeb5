"""cvdemo app entry point: a router only. Each page lives in pages/."""

import streamlit as st

st.set_page_config(page_title="cvdemo", page_icon="🧠", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
]
st.navigation(pages).run()
