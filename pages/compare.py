"""Runs: every run in a table; compare some side by side; download or delete one."""

import altair as alt
import pandas as pd
import streamlit as st

from cvdemo import runs
from cvdemo.checkpoint import checkpoint_path, has_checkpoint
from cvdemo.compare import flat_config, result_rows
from cvdemo.errors import CvdemoError
from cvdemo.lesson_results import run_labels as legend_labels
from cvdemo.run_list import run_labels, run_rows
from pages.ui import charts, comparison, projector, sharing, state, widgets

st.title("Runs")
st.caption("Every training run on this computer, newest first. Pick a few to compare their curves and results.")
widgets.flash()

found = runs.list_runs(runs.default_root())
if not found:
    st.info("No runs yet: start one on the Home or Train page.")
    st.stop()
by_id = {r.id: r for r in found}
st.dataframe(run_rows(found), hide_index=True, placeholder=widgets.MISSING, width="stretch",
             column_config=widgets.PERCENT_COLUMNS)
rows = dict(zip(by_id, result_rows(found)))

st.subheader("Compare runs")
with_epochs = [r.id for r in found if r.epochs_done]
picker = run_labels(found)  # name, or model, data and the settings that set it apart
chosen = st.multiselect("Runs to compare", with_epochs, key=state.KEY_COMPARE,
                        default=[i for i in with_epochs if by_id[i].state == "completed"][:3],
                        format_func=lambda i: picker[i])
if chosen:
    table = pd.DataFrame([rows[i] for i in chosen])
    st.dataframe(table, hide_index=True, placeholder=widgets.MISSING, width="stretch",
                 column_config={**widgets.PERCENT_COLUMNS, "parameters": st.column_config.NumberColumn(format="localized"),
                                "test macro-F1": st.column_config.NumberColumn(format="%.3f"),
                                "seconds": st.column_config.NumberColumn(format="%.0f")})
    st.download_button("Download this table (CSV)", table.to_csv(index=False), file_name="comparison.csv",
                       mime="text/csv", icon=":material/download:", key=state.KEY_COMPARE_CSV)
    labels = legend_labels([by_id[i].path for i in chosen])  # a run's name (a lesson arm's: what differs)
    frame = charts.curves_frame({label: runs.read_metrics(by_id[i].path) for label, i in zip(labels, chosen)})
    log = st.toggle("Loss on a log scale", value=True, key=state.KEY_COMPARE_LOG,
                    help="each step up the axis is ten times the loss: a run stuck at 300 and one "
                         "that reached 0.05 both stay readable")
    left, right = st.columns(2)
    with left:
        charts.draw_curve(frame, "top-1 accuracy", by_run=True, height=300)
    with right:
        charts.draw_curve(frame, "loss", by_run=True, height=300, log=log)
    st.caption("Solid lines: training; dashed: validation. Test accuracy is measured once, at the end, "
               "on images no run ever trained or chose a checkpoint on.")
    comparison.outcome(list(zip(labels, [by_id[i].path for i in chosen])))
    picked = [by_id[i] for i in chosen]
    covers = sharing.report_key(picked)
    stored = st.session_state.get(state.KEY_REPORT)
    if st.button("Make a report of these runs", icon=":material/description:", key=state.KEY_REPORT_BUILD,
                 help="one HTML file with the settings, curves, metrics, confusion matrices, mistakes, "
                      "embeddings and explanations; it opens offline and prints"):
        try:
            with st.spinner("Evaluating the runs and drawing the figures…"):
                stored = {"runs": covers, "html": sharing.build_report(picked)}
        except CvdemoError as e:
            widgets.show_error(e)
        else:
            st.session_state[state.KEY_REPORT] = stored
    if stored and stored["runs"] == covers:
        st.download_button("Download the report (HTML)", stored["html"], file_name="cvdemo-report.html",
                           mime="text/html", icon=":material/download:", key=state.KEY_REPORT_DOWNLOAD)
        st.caption(f"{len(stored['html']) / 2**20:.1f} MB, self-contained: the same file `cvdemo report` writes.")
else:
    st.caption("Choose runs above to see their curves side by side.")

st.subheader("Hyperparameters against results")
scored = [rows[r.id] | flat_config(r.path) for r in found if rows[r.id]["test top-1"] is not None]
varying = [k for k in (scored[0] if scored else {}) if "." in k
           and len({str(s.get(k)) for s in scored}) > 1]
if len(scored) < 2 or not varying:
    st.caption("Finish two or more runs that differ in a setting (say the learning rate) to see its effect here.")
else:
    x = st.selectbox("Setting", varying, index=varying.index("train.lr") if "train.lr" in varying else 0,
                     key=state.KEY_SCATTER_X)
    data = pd.DataFrame([{"setting": s[x], "test top-1": s["test top-1"], "model": s["model"], "run": s["run"]}
                         for s in scored])
    numeric = pd.api.types.is_numeric_dtype(data["setting"]) and not pd.api.types.is_bool_dtype(data["setting"])
    log = numeric and x.endswith("lr") and (data["setting"] > 0).all()
    chart = alt.Chart(data, height=320).mark_circle(size=160).encode(
        x=alt.X("setting:Q" if numeric else "setting:N", title=x, scale=alt.Scale(type="log") if log else alt.Scale()),
        y=alt.Y("test top-1:Q", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False)),
        color=alt.Color("model:N", legend=alt.Legend(orient="right", title=None)), tooltip=["run", "setting", "test top-1"])
    st.altair_chart(chart, width="stretch")

st.subheader("Resume, export, download or delete a run")
with_weights = [r.id for r in found if has_checkpoint(r.path)]
run_id = st.selectbox("Run", list(by_id), format_func=lambda i: picker[i], key=state.KEY_SELECTED_RUN,
                      index=list(by_id).index(with_weights[0]) if with_weights else 0)
r = by_id[run_id]
resume_col, export_col = st.columns(2)
with resume_col:
    if r.state in runs.RESUMABLE and (r.path / "last.pt").exists():
        if st.button(f"Resume from epoch {r.epochs_done}", icon=":material/resume:", key=state.KEY_RESUME,
                     help="continue where it stopped, in the background, with the same settings"):
            try:
                runs.resume_in_background(r.path)
            except CvdemoError as e:
                widgets.show_error(e)
            else:
                st.session_state[state.KEY_WATCH_RUN] = r.id
                projector.switch_page("pages/train.py")  # watch it go on from where it stopped
        st.caption(f"It stopped {r.state} after {r.epochs_done} of {r.epochs} epochs; resuming trains the rest.")
    else:
        st.caption("Resume is for runs that were cancelled, interrupted or failed after a finished epoch.")
with export_col:
    if has_checkpoint(r.path):
        if st.button("Export for use elsewhere (TorchScript)", icon=":material/deployed_code:", key=state.KEY_EXPORT,
                     help="one file that runs with PyTorch alone: resizing, normalisation and softmax inside, "
                          "checked against the run on test images; with a model card"):
            from cvdemo.export import export_zip  # torch and TorchScript: only when asked

            try:
                with st.spinner("Exporting and checking it against the run…"):
                    st.session_state[state.KEY_EXPORTED] = (r.id, *export_zip(r.path))
            except CvdemoError as e:
                widgets.show_error(e)
        exported = st.session_state.get(state.KEY_EXPORTED)
        if exported and exported[0] == r.id:
            _, data, card = exported
            st.download_button("Download the export (zip)", data, file_name=f"{r.id}-torchscript.zip",
                               mime="application/zip", icon=":material/download:", key=state.KEY_EXPORT_DOWNLOAD)
            st.caption(f"model.pt, model_card.json and model_card.md; the exported model's answers differ from the "
                       f"run's by at most {card['check']['max_abs_diff']:.1e} on {card['check']['images']} test "
                       "images. `cvdemo predict model.pt photo.png` reads it.")
left, right = st.columns(2)
with left:
    if has_checkpoint(r.path):
        weights, which = checkpoint_path(r.path)  # best.pt, else last.pt: the file every analysis reads
        st.download_button(f"Download {which}.pt", data=weights.read_bytes, file_name=f"{r.id}-{which}.pt",
                           icon=":material/download:", mime="application/octet-stream", key=state.KEY_DOWNLOAD)
        what = ("The weights with the best validation accuracy" if which == "best" else
                "The weights after the last finished epoch (the run saved no best.pt)")
        st.caption(f"{what}, {weights.stat().st_size / 2**20:.1f} MB; "
                   "`cvdemo predict` and the Classify page read it.")
    else:
        st.caption("This run has no checkpoint (it did not finish an epoch).")
with right:
    sure = st.checkbox(f"Yes, delete run {r.id} and all its files", key=state.KEY_DELETE_CONFIRM)
    if st.button("Delete run", icon=":material/delete:", disabled=not sure, key=state.KEY_DELETE):
        try:
            runs.delete_run(r.path)
        except CvdemoError as e:
            widgets.show_error(e)
        else:
            for key in (state.KEY_SELECTED_RUN, state.KEY_COMPARE, state.KEY_DELETE_CONFIRM):
                st.session_state.pop(key, None)
            widgets.flash(f"Deleted run {r.id}.")
            st.rerun()
