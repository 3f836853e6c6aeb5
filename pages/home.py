"""Home: one-click lesson, what is running now, recent runs."""

import streamlit as st

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.errors import CvdemoError
from pages.common import runs_root, runs_table, show_error

st.title("cvdemo — image classification playground")
st.write("Train a network, watch it learn, and ask why it predicted what it did. "
         "Everything here works offline on a laptop CPU.")

left, right = st.columns([1, 2])
with left:
    st.subheader("Lesson: handwritten digits")
    st.caption("LeNet on the 8×8 digits that ship with scikit-learn: about 97% test accuracy in seconds.")
    if st.button("Train digits", type="primary", icon="▶️"):
        try:
            run_dir = runs.launch(RunConfig(), runs_root())
            st.success(f"Started run {run_dir.name}")
        except CvdemoError as e:
            show_error(e)


@st.fragment(run_every=2)
def run_list() -> None:
    found = runs.list_runs(runs_root())
    active = [r for r in found if r.state in ("queued", "running")]
    st.subheader(f"Running now ({len(active)})")
    for r in active:
        fraction = r.epochs_done / r.epochs if r.epochs else 0.0
        st.progress(fraction, text=f"{r.id}: {r.message or r.state}")
    st.subheader("Recent runs")
    if not found:
        st.info("No runs yet: press **Train digits** to start one.")
        return
    st.dataframe(runs_table(found[:20]), hide_index=True, width="stretch",
                 column_config={"val top-1": st.column_config.NumberColumn(format="percent"),
                                "test top-1": st.column_config.NumberColumn(format="percent")})


with right:
    run_list()
