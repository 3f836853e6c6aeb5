"""Train: every setting of a run in one form, then live curves of the run being watched."""

import streamlit as st

from cvdemo import runs
from cvdemo.config import RunConfig, config_problems, field_infos
from cvdemo.errors import CvdemoError
from cvdemo.progress import duration, progress
from cvdemo.run_list import run_label
from cvdemo.share import config_from_json, config_json
from pages.ui import charts, sharing, state, widgets

SECTION_TITLES = {"data": "Data", "model": "Model", "train": "Training"}
# Fields shown without opening "More … settings"; every other field (and any the core adds) sits there.
PRIMARY = {"data": ("source", "augment", "limit_train", "image_size"), "model": ("name", "pretrained", "freeze"),
           "train": ("epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay")}
ACTIVE = ("queued", "running")


def names() -> tuple[list[str], list[str]]:
    """The built-in data sets and the model names. Imported here, after the title is on screen:
    cvdemo.models loads torch, seconds on the first visit, and the page would stay blank meanwhile."""
    from cvdemo.data import SOURCES
    from cvdemo.models import list_models

    return list(SOURCES), list_models()


st.title("Train")
st.caption("Set up a run and press **Start training**. It trains in the background: switch pages, close the tab "
           "or start more runs while the curves on the right grow epoch by epoch.")
with st.spinner("Loading the models…"):
    SOURCES, MODELS = names()

link_warning = sharing.settings_from_url(MODELS)  # a shared link's settings fill the form
if link_warning:
    st.warning(link_warning, icon=":material/link_off:")
config = state.draft()
choices = {"data": {"source": list(dict.fromkeys([config["data"]["source"], *SOURCES]))},
           "model": {"name": MODELS, "freeze": list(widgets.freeze_choices(config["model"]["name"]))}}
form_col, live_col = st.columns([5, 6], gap="large")
with form_col:
    with st.form(state.KEY_TRAIN_FORM, border=True):
        raw = {}
        for info in field_infos(RunConfig):
            if info.kind == "section":
                st.markdown(f"##### {SECTION_TITLES.get(info.name, info.name.capitalize())}")
                raw[info.name] = widgets.config_section(info.name, info.default, config.get(info.name, {}),
                                                        primary=PRIMARY.get(info.name, ()), choices=choices.get(info.name))
            else:
                raw[info.name] = widgets.field_widget("", info, config.get(info.name, info.default))
        start_col, share_col = st.columns(2)
        submitted = start_col.form_submit_button("Start training", type="primary", icon=":material/play_arrow:",
                                                 key=state.KEY_TRAIN_START)
        shared = share_col.form_submit_button("Update the link", icon=":material/link:", key=state.KEY_TRAIN_SHARE,
                                              help="put these settings in the address bar without training")
    problems = config_problems(raw) if submitted or shared else []  # every bad field at once, with its range
    if problems:
        widgets.show_problems(problems, "start training" if submitted else "update the link")
    elif shared:
        try:
            st.session_state[state.KEY_DRAFT] = RunConfig.from_dict(raw).to_dict()
        except CvdemoError as e:
            widgets.show_error(e)
    elif submitted:
        try:
            run_config = RunConfig.from_dict(raw)
            run_dir = runs.launch(run_config, runs.default_root())
        except CvdemoError as e:
            widgets.show_error(e)
        else:
            st.session_state[state.KEY_DRAFT] = run_config.to_dict()
            st.session_state[state.KEY_WATCH_RUN] = run_dir.name
            st.success(f"Started run {run_dir.name}.", icon=":material/rocket_launch:")
    st.caption("Data and model can also be chosen, with previews, on the Data and Model pages.")
    link = sharing.settings_to_url(st.session_state[state.KEY_DRAFT])
    with st.expander("Share these settings", icon=":material/share:"):
        st.caption("The address bar holds every setting that differs from the defaults (it changes when you "
                   "press Start training or Update the link): hand the link to someone and their Train page "
                   "opens with these settings.")
        st.code(sharing.share_link(link), language=None, wrap_lines=True)
        st.download_button("Download these settings (JSON)", config_json(st.session_state[state.KEY_DRAFT]),
                           file_name="cvdemo-settings.json", mime="application/json", icon=":material/download:",
                           key=state.KEY_CONFIG_DOWNLOAD)
        upload = st.file_uploader("Load settings from a file (a run's config.json works too)", type=["json"],
                                  key=state.KEY_CONFIG_UPLOAD)
        if upload is not None and st.session_state.get(state.KEY_CONFIG_UPLOADED) != upload.file_id:
            st.session_state[state.KEY_CONFIG_UPLOADED] = upload.file_id
            try:
                state.set_draft(config_from_json(upload.name, upload.getvalue()))
            except CvdemoError as e:
                widgets.show_error(e)
            else:
                st.rerun()

busy = any(r.state in ACTIVE for r in runs.list_runs(runs.default_root()))


def live() -> None:
    found = runs.list_runs(runs.default_root())[:30]
    if not found:
        st.info("No runs yet: set up a run on the left and press **Start training**.")
        return
    by_id = {r.id: r for r in found}
    active = [r for r in found if r.state in ACTIVE]
    if busy and not active:
        st.rerun()  # the last run just ended: redraw the page once and stop polling
    if st.session_state.get(state.KEY_WATCH_RUN) not in by_id:
        st.session_state[state.KEY_WATCH_RUN] = (active or found)[0].id
    r = by_id[st.selectbox("Watching run", list(by_id), format_func=lambda i: run_label(by_id[i]),
                           key=state.KEY_WATCH_RUN)]
    metrics = runs.read_metrics(r.path)
    p = progress(r, metrics)
    epochs = [m for m in metrics if m.get("kind") == "epoch"]
    widgets.show_run_state(r)
    cols = st.columns(4)
    cols[0].metric("epochs done", f"{p['done']} / {p['total']}")
    cols[1].metric("validation top-1", f"{epochs[-1]['val_top1']:.1%}" if epochs else "—")
    cols[2].metric("images / s", f"{p['images_per_s']:,.0f}" if p["images_per_s"] else "—")
    cols[3].metric("time left", duration(p["eta"]) if r.state in ACTIVE else "—")
    if r.state in ACTIVE:
        st.progress(p["fraction"])
        if st.button("Cancel this run", icon=":material/stop:", key=state.KEY_TRAIN_CANCEL):
            if runs.cancel(r.path):
                st.toast("Asked the run to stop: it saves its last epoch and ends.")
            else:
                st.toast("Nothing to stop: the run has already ended.")
    frame = charts.curves_frame({r.id: metrics})
    if frame.empty:
        st.caption("The curves appear when the first epoch ends.")
        return
    planned = r.epochs if r.state in ACTIVE else None  # an ended run's axis fits what it recorded
    charts.draw_curve(frame, "loss", epochs=planned)
    charts.draw_curve(frame, "top-1 accuracy", epochs=planned)
    charts.draw_curve(frame, "learning rate", epochs=planned, height=180)
    if len(active) > 1 or (active and r not in active):
        st.caption(f"{len(active)} runs are training at once; they share the processor.")


with live_col:
    st.fragment(live, run_every=1.5 if busy else None)()
