"""Home: one-click lessons, what is running now, recent runs."""

from pathlib import Path
from typing import Any

import streamlit as st

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.errors import CvdemoError
from cvdemo.lesson_results import lesson_from_link, lesson_link
from cvdemo.lessons import list_lessons, load_lesson
from cvdemo.progress import duration, progress
from cvdemo.public_names import public_text
from cvdemo.recipes import list_recipes, load_recipe
from cvdemo.run_list import run_rows
from pages.ui import comparison, projector, state, widgets

# One-click lessons: title -> (what to look at, the recipe it starts from, changes to that recipe).
LESSONS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "Digits with LeNet": (
        "LeNet with ReLU, max-pooling and batch norm on the 8×8 handwritten digits that ship with scikit-learn: "
        "at least 97% test accuracy in seconds. Watch the loss fall and the accuracy climb epoch by epoch.",
        "lenet-digits", {}),
    "Digits with a small ResNet": (
        "A ResNet-9-style network with residual blocks and batch norm on the same digits, 3 epochs. "
        "A hundred times more parameters than LeNet-5: compare speed and accuracy on the Runs page.", "lenet5-digits",
        {"model": {"name": "cifar_resnet"}, "data": {"image_size": 32}, "train": {"epochs": 3},
         "name": "digits-small-resnet"}),
}


def lesson_config(title: str) -> RunConfig:
    """The run config of a lesson: its recipe with the lesson's changes."""
    _, recipe, changes = LESSONS[title]
    return load_recipe(recipe).config.replace(**changes)


st.title("cvdemo — image classification playground")
st.write("Train a network, watch it learn, and ask why it predicted what it did. "
         "Everything here works offline on a laptop CPU.")

st.subheader("Lessons")
for column, (title, (caption, _recipe, _changes)) in zip(st.columns(len(LESSONS)), LESSONS.items()):
    with column.container(border=True):
        st.markdown(f"#### {title}")
        st.caption(caption)
        start, customise = st.columns(2)
        if start.button("Start", type="primary", icon=":material/play_arrow:", key=state.KEY_LESSON_START + title,
                        help="train now with the lesson's settings, and watch it on the Train page", width="stretch"):
            try:
                run_dir = runs.launch(lesson_config(title), runs.default_root())
            except CvdemoError as e:
                widgets.show_error(e)
            else:
                st.session_state[state.KEY_WATCH_RUN] = run_dir.name  # the Train page opens watching it
                projector.switch_page("pages/train.py")
        if customise.button("Change settings first", icon=":material/tune:", key=state.KEY_LESSON_EDIT + title,
                            width="stretch"):
            st.session_state[state.KEY_DRAFT] = lesson_config(title).to_dict()
            projector.switch_page("pages/train.py")

st.subheader("Lessons that compare")
st.write("Each lesson asks one question and answers it with two to four runs that differ in one thing. "
         "**Start** trains them all at once and draws their curves together below.")
NEXT_PAGE = {"runs": "pages/compare.py", "evaluate": "pages/evaluate.py", "embeddings": "pages/embeddings.py",
             "explain": "pages/explain.py", "train": "pages/train.py"}
lessons = [load_lesson(name) for name in list_lessons()]
for first in range(0, len(lessons), 3):
    for column, lesson in zip(st.columns(3), lessons[first:first + 3]):
        with column.container(border=True):
            st.markdown(f"#### {lesson.title}")
            st.write(lesson.question)
            st.markdown(" · ".join(f"`{arm.label}`" for arm in lesson.arms))
            st.caption(f"About {lesson.seconds:.0f} s for all {len(lesson.arms)} runs, measured on "
                       f"{lesson.measured_on}." if lesson.seconds else "Not timed on this machine yet.")
            if lesson.data_note:
                st.caption(lesson.data_note)
            start, change = st.columns(2)
            if start.button("Start", type="primary", icon=":material/play_arrow:", width="stretch",
                            key=state.KEY_COMPARE_START + lesson.name, help="train every run of the lesson now"):
                try:
                    started = [[label, str(runs.launch(config, runs.default_root()))]
                               for label, config in lesson.configs_for()]
                except CvdemoError as e:
                    widgets.show_error(e)
                else:
                    st.session_state[state.KEY_ACTIVE_LESSON] = {"lesson": lesson.name, "arms": started}
            with change.popover("Change an arm", icon=":material/tune:", width="stretch"):
                st.caption("Open one run's settings in the Train form, change them, and train it there.")
                for i, arm in enumerate(lesson.arms):
                    if st.button(arm.label, key=f"{state.KEY_COMPARE_ARM}{lesson.name}:{i}", width="stretch"):
                        state.set_draft(arm.config)
                        projector.switch_page("pages/train.py")


def lesson_view() -> None:
    """The lesson started from this page: its runs' curves as they grow, then how each ended and what it shows."""
    active = st.session_state.get(state.KEY_ACTIVE_LESSON)
    if not active:
        return
    lesson = load_lesson(active["lesson"])
    arms = [(label, Path(run_dir)) for label, run_dir in active["arms"]]
    st.subheader(f"Lesson: {lesson.title}")
    st.write(lesson.question)
    if lesson.note:
        st.caption(f"What to watch: {lesson.note}")
    log = st.toggle("Loss on a log scale", value=True, key=state.KEY_LESSON_LOG)
    comparison.view(arms, [c for c in lesson.curves if c != "gradients"], log=log,
                    dynamics="gradients" in lesson.curves)
    st.page_link(NEXT_PAGE[lesson.page], label=f"Next: the {lesson.page.capitalize()} page",
                 icon=":material/arrow_forward:")


def keep_lesson_in_url() -> None:
    """A reload keeps the lesson shown: its name and its runs' ids live in the address (?lesson=...&runs=...),
    and a session without a lesson takes it from there. What the address holds is checked (a known
    lesson, as many runs as arms, ids of runs that exist here); a link that fails that is said in one
    sentence and dropped from the address."""
    active = st.session_state.get(state.KEY_ACTIVE_LESSON)
    if active:
        wanted = lesson_link(active["lesson"], [Path(run_dir) for _, run_dir in active["arms"]])
        if any(st.query_params.get(key) != value for key, value in wanted.items()):
            st.query_params.update(wanted)  # other parameters (?projector=1) stay
        return
    try:
        found = lesson_from_link(st.query_params.to_dict(), runs.default_root())
    except CvdemoError as e:
        st.caption(widgets.plain(f"The lesson in this page's address cannot be shown: {e}."))
        for key in lesson_link("", []):
            st.query_params.pop(key, None)
        return
    if found is not None:
        lesson, arms = found
        st.session_state[state.KEY_ACTIVE_LESSON] = {"lesson": lesson.name,
                                                     "arms": [[label, str(run_dir)] for label, run_dir in arms]}


keep_lesson_in_url()
# Redrawn every 2 s only while a lesson started here is shown: a page polling for nothing makes clicks
# on it (a lesson's Start) race the reruns.
st.fragment(lesson_view, run_every=2 if st.session_state.get(state.KEY_ACTIVE_LESSON) else None)()

with st.expander("Recipes from the student reports: set one up on the Train page"):
    used = {recipe for _, recipe, _changes in LESSONS.values()}  # the lessons above start from these
    names = [n for n in list_recipes() if n not in used]
    recipe = load_recipe(st.selectbox("Recipe", names, key=state.KEY_RECIPE,
                                      format_func=lambda n: load_recipe(n).title))
    st.write(recipe.description)
    notes = ["meant for a GPU: on a laptop CPU it takes a long time" if recipe.device == "gpu" else "runs on a CPU"]
    if recipe.data_required:
        notes.append(f"needs your data ({recipe.data_required}): choose it on the Data page")
    st.caption(" · ".join(notes))
    if st.button("Open in Train", icon=":material/tune:", key=state.KEY_RECIPE_OPEN):
        source = state.draft()["data"]["source"]
        config = recipe.config_for(source if recipe.data_required else None)
        st.session_state[state.KEY_DRAFT] = config.to_dict()
        projector.switch_page("pages/train.py")


def run_list(polling: bool) -> None:
    """What is training now and the latest runs. Redrawn every 2 s only while something trains: a page
    polling for nothing makes a click on it (a lesson's Start) race the reruns. When the last run ends,
    the whole page is drawn once more, which stops the polling."""
    found = runs.list_runs(runs.default_root())
    active = [r for r in found if r.state in ("queued", "running")]
    if polling and not active:
        st.rerun(scope="app")
    st.subheader(f"Running now ({len(active)})")
    if not active:
        st.caption("Nothing is training. Start a lesson above, or set one up on the Train page.")
    for r in active:
        p = progress(r, runs.read_metrics(r.path))
        eta = f" · about {duration(p['eta'])} left" if p["eta"] is not None else ""
        st.progress(p["fraction"], text=f"**{r.model}** on {r.data_name or r.data} · "
                    f"{public_text(r.message) or r.state}{eta}")
    st.subheader("Recent runs")
    if not found:
        st.info("No runs yet: press **Start** on a lesson to train one.")
        return
    st.dataframe(run_rows(found[:10]), hide_index=True, placeholder=widgets.MISSING, width="stretch",
                 column_config=widgets.PERCENT_COLUMNS)


training = any(r.state in ("queued", "running") for r in runs.list_runs(runs.default_root()))
st.fragment(run_list, run_every=2 if training else None)(training)
