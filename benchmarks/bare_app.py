"""The baseline of `cvdemo bench app`: a bare two-page Streamlit app, the least any Streamlit app costs."""

import streamlit as st


def first() -> None:
    st.title("First")
    st.write("A page with nothing to load.")


def second() -> None:
    st.title("Second")
    st.write("Another page with nothing to load.")


st.navigation([st.Page(first, title="First", default=True), st.Page(second, title="Second")]).run()
