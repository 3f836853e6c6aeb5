"""Home: one-click lessons, what is running now, recent runs."""

import streamlit as st

from cvdemo import runs
from cvdemo.errors import CvdemoError
from pages import common as ui

st.title("cvdemo — image classification playground")
st.write("Train a network, watch it learn, and ask why it predicted what it did. "
         "Everything here works offline on a laptop CPU.")

st.subheader("Lessons")
for column, (title, (caption, _recipe, _changes)) in zip(st.columns(len(ui.LESSONS)), ui.LESSONS.items()):
    with column.container(border=True):
        st.markdown(f"#### {title}")
        st.caption(caption)
        start, customise = st.columns(2)
        if start.button("Start", type="primary", icon=":material/play_arrow:", key=ui.KEY_LESSON_START + title,
                        help="train now with the lesson's settings", width="stretch"):
            try:
                run_dir = runs.launch(ui.lesson_config(title), ui.runs_root())
                st.session_state[ui.KEY_WATCH_RUN] = run_dir.name
                st.success(f"Started run {run_dir.name}: open **Train** to watch its curves.")
            except CvdemoError as e:
                ui.show_error(e)
        if customise.button("Change settings first", icon=":material/tune:", key=ui.KEY_LESSON_EDIT + title,
                            width="stretch"):
            st.session_state[ui.KEY_DRAFT] = ui.lesson_config(title).to_dict()
            st.switch_page("pages/train.py")

with st.expander("Recipes from the student reports: set one up on the Train page"):
    from cvdemo.recipes import list_recipes, load_recipe

    used = {recipe for _, recipe, changes in ui.LESSONS.values() if not changes}
    names = [n for n in list_recipes() if n not in used]
    recipe = load_recipe(st.selectbox("Recipe", names, key=ui.KEY_RECIPE,
                                      format_func=lambda n: load_recipe(n).title))
    st.write(recipe.description)
    notes = ["meant for a GPU: on a laptop CPU it takes a long time" if recipe.device == "gpu" else "runs on a CPU"]
    if recipe.data_required:
        notes.append(f"needs your data ({recipe.data_required}): choose it on the Data page")
    st.caption(" · ".join(notes))
    if st.button("Open in Train", icon=":material/tune:", key=ui.KEY_RECIPE_OPEN):
        source = ui.draft()["data"]["source"]
        config = recipe.config_for(source if recipe.data_required else None)
        st.session_state[ui.KEY_DRAFT] = config.to_dict()
        st.switch_page("pages/train.py")


@st.fragment(run_every=2)
def run_list() -> None:
    found = runs.list_runs(ui.runs_root())
    active = [r for r in found if r.state in ("queued", "running")]
    st.subheader(f"Running now ({len(active)})")
    if not active:
        st.caption("Nothing is training. Start a lesson above, or set one up on the Train page.")
    for r in active:
        p = ui.progress(r, runs.read_metrics(r.path))
        eta = f" · about {ui.duration(p['eta'])} left" if p["eta"] is not None else ""
        st.progress(p["fraction"], text=f"**{r.model}** on {r.data} · {r.message or r.state}{eta}")
    st.subheader("Recent runs")
    if not found:
        st.info("No runs yet: press **Start** on a lesson to train one.")
        return
    st.dataframe(ui.runs_table(found[:10]), hide_index=True, width="stretch", column_config=ui.PERCENT_COLUMNS)


run_list()
