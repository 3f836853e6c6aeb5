"""Train: every setting of a run in one form, then live curves of the run being watched."""

import streamlit as st

from cvdemo import runs
from cvdemo.config import RunConfig, config_problems, field_infos
from cvdemo.errors import CvdemoError
from cvdemo.health import run_health
from cvdemo.progress import duration, live_progress
from cvdemo.run_list import run_labels
from cvdemo.share import config_from_json, config_json
from pages.ui import charts, projector, sharing, state, widgets
from pages.ui.background import BackgroundTask

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


def check_before_run(config: RunConfig) -> None:
    """What `cvdemo train` checks before it creates a run folder (cvdemo.train.setup; imports torch)."""
    from cvdemo.train.setup import check_before_run as check

    check(config)


def find_lr_of(config: RunConfig) -> object:
    """The LR finder on the form's settings (cvdemo.train.job.find_lr; imports torch, so imported here)."""
    from cvdemo.train.job import find_lr

    return find_lr(config)


def use_rate(rate: float) -> None:
    """"Use this rate": the draft's lr and the form's lr field become `rate` (a callback, so before the form
    is drawn; set through the widget's key, so the browser's copy of the field changes too)."""
    state.update_draft(train={"lr": rate})
    st.session_state[state.form_key("train", "lr")] = rate


def lr_finder_waiting() -> None:
    """While the LR finder sweeps (a thread: reruns and clicks do not stop it); redraws the page when done."""
    task = st.session_state.get(state.KEY_LR_FIND)
    if task is None or task.done:
        st.rerun()
    st.info(f"Finding a learning rate: training on about 100 batches with the rate growing from 0.0000001 "
            f"to 10… ({task.seconds:.0f} s)", icon=":material/hourglass_top:")


def lr_finder_panel() -> None:
    """The LR finder's result under the form: loss against learning rate, the suggestion marked, and a
    button that puts the suggestion in the form."""
    task = st.session_state.get(state.KEY_LR_FIND)
    if task is None:
        return
    if not task.done:
        st.fragment(lr_finder_waiting, run_every=1.0)()
        return
    if task.error is not None:
        widgets.show_failure(task.error, "the LR finder")
        return
    found, settings = task.result, task.about
    rate = float(f"{found.suggested_lr:.2g}")
    with st.container(border=True):
        st.markdown("**Learning-rate finder**")
        st.caption(f"{settings.model.name} on {runs.data_display_name(settings.data.source)}, {settings.train.optimizer}, batch "
                   f"{settings.train.batch_size}: each batch trained with a larger rate than the last "
                   f"({task.seconds:.0f} s; the model is thrown away afterwards).")
        st.altair_chart(charts.lr_finder_chart(found.lrs, found.losses, found.suggested_lr), width="stretch")
        st.caption(f"Where the loss falls fastest, {found.suggested_lr:.2g}, is a good rate to start from; past "
                   f"the lowest point ({found.min_loss_lr:.2g}) the steps get too large and the loss shoots up.")
        st.button(f"Use this rate ({rate:g})", icon=":material/check:", type="primary", key=state.KEY_LR_USE,
                  on_click=use_rate, args=(rate,), help="puts it in the form's lr field; press Start training next")


st.title("Train")
if not projector.enabled():  # on a projector every line above the curves costs them room
    st.caption("Set up a run and press **Start training**. It trains in the background: switch pages, close the "
               "tab or start more runs while the curves on the right grow epoch by epoch.")
with st.spinner("Loading the models…"):
    SOURCES, MODELS = names()

link_warning = sharing.settings_from_url(MODELS)  # a shared link's settings fill the form
if link_warning:
    st.warning(link_warning, icon=":material/link_off:")
config = state.draft()
choices = {"data": {"source": list(dict.fromkeys([config["data"]["source"], *SOURCES]))},
           "model": {"name": MODELS, "freeze": list(widgets.freeze_choices(config["model"]["name"]))}}
if projector.enabled():  # a classroom: the curves first and full width, the form folded away under them
    live_col = st.container()
    form_col = st.expander("Settings for a new run", icon=":material/tune:")
else:
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
        find = st.form_submit_button("Find a learning rate", icon=":material/search_insights:",
                                     key=state.KEY_LR_FIND_START,
                                     help="try rates from 0.0000001 to 10 on about 100 batches with these "
                                          "settings, and suggest one; nothing is saved")
    problems = config_problems(raw) if submitted or shared or find else []  # every bad field, with its range
    if problems:
        widgets.show_problems(problems, "start training" if submitted else "update the link" if shared
                              else "find a learning rate")
    elif find:
        try:
            finder_config = RunConfig.from_dict(raw)
        except CvdemoError as e:
            widgets.show_error(e)
        else:
            st.session_state[state.KEY_DRAFT] = finder_config.to_dict()
            st.session_state[state.KEY_LR_FIND] = BackgroundTask(find_lr_of, finder_config, about=finder_config)
    elif shared:
        try:
            st.session_state[state.KEY_DRAFT] = RunConfig.from_dict(raw).to_dict()
        except CvdemoError as e:
            widgets.show_error(e)
    elif submitted:
        try:
            run_config = RunConfig.from_dict(raw)
            check_before_run(run_config)  # a mistake found here (unknown freeze group, a missing zip) leaves no run
            run_dir = runs.launch(run_config, runs.default_root())
        except CvdemoError as e:
            widgets.show_error(e)
        else:
            st.session_state[state.KEY_DRAFT] = run_config.to_dict()
            st.session_state[state.KEY_WATCH_RUN] = run_dir.name
            st.success(f"Started run {run_dir.name}.", icon=":material/rocket_launch:")
    lr_finder_panel()
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
    labels = run_labels(found)  # name, or model, data and the settings that set it apart
    r = by_id[st.selectbox("Watching run", list(by_id), format_func=labels.__getitem__,
                           key=state.KEY_WATCH_RUN)]
    metrics = runs.read_metrics(r.path)
    p = live_progress(r, metrics, runs.read_status(r.path) if r.state in ACTIVE else {})
    epochs = [m for m in metrics if m.get("kind") == "epoch"]
    widgets.show_run_state(r, run_health(r.path))  # the state, and whether the run learned
    curves_box = st.container() if projector.enabled() else None  # on a projector the curves come before the figures
    cols = st.columns(4)
    cols[0].metric("epochs done", f"{p['done']} / {p['total']}")
    cols[1].metric("validation top-1", f"{epochs[-1]['val_top1']:.1%}" if epochs else "—")
    cols[2].metric(p["speed_label"], f"{p['images_per_s']:,.0f}" if p["images_per_s"] else "—")
    cols[3].metric("time left", duration(p["time_left"]) if r.state in ACTIVE else "—")
    if r.state in ACTIVE:  # the phase under way (feature cache, validation, test) with its own rate and time left
        st.progress(p["bar_fraction"], text=p["bar_text"] or None)
        if st.button("Cancel this run", icon=":material/stop:", key=state.KEY_TRAIN_CANCEL):
            if runs.cancel(r.path):
                st.toast("Asked the run to stop: it saves its last epoch and ends.")
            else:
                st.toast("Nothing to stop: the run has already ended.")
    frame = charts.curves_frame({r.id: metrics})
    if frame.empty:
        st.caption("The curves appear when the first training steps are recorded.")
        return
    planned = r.epochs if r.state in ACTIVE else None  # an ended run's axis fits what it recorded
    # On a projector loss and accuracy sit side by side, so both are in view without scrolling.
    loss_col, acc_col = curves_box.columns(2, gap="large") if curves_box else (st.container(), st.container())
    with loss_col:
        charts.draw_curve(frame, "loss", epochs=planned)  # step by step: drawn before any epoch ends
    with acc_col:
        if epochs:
            charts.draw_curve(frame, "top-1 accuracy", epochs=planned)
        else:
            st.caption("Accuracy is measured at the end of each epoch: none has finished"
                       + (" yet." if r.state in ACTIVE else "."))
    charts.draw_curve(frame, "learning rate", epochs=planned, height=180)
    gradients = charts.dynamics_frame(metrics)
    if not gradients.empty and st.toggle("Gradients inside the network", key=state.KEY_TRAIN_GRADIENTS,
                                         help="per layer group, input at the top, the gradient norm at "
                                              "every recorded step: a dark top row means a vanishing gradient"):
        st.altair_chart(charts.gradient_heatmap(gradients), width="stretch")
        values = charts.dynamics_values(gradients) or list(charts.DYNAMICS_TITLES)
        first = "update_ratio" if "update_ratio" in values else values[0]
        value = st.segmented_control("Per layer group", values, default=first,
                                     format_func=charts.DYNAMICS_TITLES.get, key=state.KEY_TRAIN_DYNAMICS)
        st.altair_chart(charts.dynamics_lines(gradients, value or first), width="stretch")
        st.caption("Update / weight: how much one step changes a group's weights, relative to their size; "
                   "around 0.001 is the usual healthy range, far above means the rate is too high for that "
                   "group, far below means it barely learns. Dead ReLU units: the share of a group's units "
                   "(channels) whose ReLU gives 0 for every image of a fixed batch; a unit that stays dead "
                   "no longer learns.")
    if len(active) > 1 or (active and r not in active):
        st.caption(f"{len(active)} runs are training at once; they share the processor.")


with live_col:
    st.fragment(live, run_every=1.5 if busy else None)()
