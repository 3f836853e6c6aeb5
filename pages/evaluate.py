"""Evaluate: how good a run is on images it never trained on, and which ones it gets wrong."""

import altair as alt
import pandas as pd
import streamlit as st

from cvdemo.config import RunConfig
from cvdemo.evaluate import SPLITS, Evaluation, sample_files, samples_in_cell
from cvdemo.run_list import run_labels, runs_with_weights
from pages.ui import cached, charts, state, widgets

SPLIT_NAMES = {"test": "test (held out)", "val": "validation", "train": "training"}
GALLERY = 30  # images shown for one confusion-matrix cell

st.title("Evaluate")
st.caption("How well a trained run does on images it never learned from: the headline numbers, which classes it "
           "mixes up (click a cell of the matrix to see those images), and whether its confidence can be trusted.")

found = runs_with_weights()
if not found:
    widgets.no_trained_runs()
    st.stop()
pick_col, split_col = st.columns([4, 1])
with pick_col:
    run = widgets.run_picker(found, state.KEY_EVAL_RUN)
split = split_col.selectbox("Images", SPLITS, format_func=SPLIT_NAMES.get, key=state.KEY_EVAL_SPLIT)
try:
    result = cached.evaluation(str(run.path), split, cached.checkpoint_stamp(run.path))
except Exception as e:  # noqa: BLE001 - shown as one sentence, never a traceback
    widgets.show_failure(e, f"evaluating run {run.id}")
    st.stop()
if result.n == 0:
    st.info(f"Run {run.id}'s data has no {SPLIT_NAMES[split].split(' ')[0]} images: choose another split.",
            icon=":material/info:")
    st.stop()
names = result.classes
k = len(names)

cols = st.columns(5)
cols[0].metric("top-1 accuracy", f"{result.top1:.1%}", help="share of images whose most likely class is right")
cols[1].metric(f"top-{min(5, k)} accuracy", f"{result.top5:.1%}",
               help="share of images whose true class is among the network's five best guesses")
cols[2].metric("macro-F1", f"{result.macro_f1:.3f}", help="F1 (balance of precision and recall) averaged over "
               "the classes, each class counting the same however many images it has")
cols[3].metric("calibration error (ECE)", f"{result.ece:.3f}", help="average gap between how sure the network "
               "is and how often it is right (0 = its confidence can be taken at face value)")
cols[4].metric("loss", f"{result.loss:.3f}", help="mean cross-entropy in nats: lower is better")
st.caption(f"{result.n:,} {SPLIT_NAMES[split].split(' ')[0]} images · {k} classes · weights from "
           f"{result.predictions.checkpoint}.pt")
from cvdemo.audit.store import run_data_warning  # noqa: E402 - after the title: cvdemo.audit loads torch

leak_note = run_data_warning(run.path)  # a small file read: what a data check found about this run's data
if leak_note and split != "train":
    st.warning(leak_note, icon=":material/content_copy:")


def confusion_chart(result: Evaluation, size: int = 440, clickable: bool = True) -> alt.LayerChart:
    """The row-normalised matrix as a heat map, counts written in the cells, about `size` pixels a side;
    a click selects a cell when `clickable`."""
    rows = [{"t": t, "p": p, "true class": names[t], "predicted class": names[p],
             "images": int(result.confusion[t, p]), "share": float(result.confusion_normalized[t, p])}
            for t in range(k) for p in range(k)]
    cell = max(8, min(90, size // k))
    click = alt.selection_point(name=state.SELECT_CELL, fields=["t", "p"], on="click")
    short = max(len(n) for n in names) <= 3
    axis = alt.Axis(labels=k <= 40, labelLimit=110, labelFontSize=13 if k <= 15 else 10, titleFontSize=14)
    x_axis = alt.Axis(labels=k <= 40, labelLimit=110, labelFontSize=13 if k <= 15 else 10, titleFontSize=14,
                      labelAngle=0 if short else -45)
    base = alt.Chart(pd.DataFrame(rows), width=cell * k, height=cell * k).encode(
        x=alt.X("predicted class:N", sort=names, axis=x_axis),
        y=alt.Y("true class:N", sort=names, axis=axis),
        tooltip=["true class", "predicted class", "images", alt.Tooltip("share:Q", format=".1%", title="share of row")])
    heat = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=None))
    if clickable:  # the clicked cell outlined in red (a chart may only name a selection it defines)
        heat = heat.encode(
            stroke=alt.when(click, empty=False).then(alt.value("#dc2626")).otherwise(alt.value("white")),
            strokeWidth=alt.when(click, empty=False).then(alt.value(4)).otherwise(alt.value(1))).add_params(click)
    pad = alt.AutoSizeParams(type="pad")  # square cells; axis labels around them, not squeezed into the square
    if k > 20:
        return heat.properties(autosize=pad)
    text = base.mark_text(fontSize=15 if k <= 12 else 11).encode(
        text="images:Q", color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("#1e293b")))
    return (heat + text.transform_filter("datum.images > 0")).properties(autosize=pad)


def leave_out(shown: list[int]) -> None:
    """Mark some of a cell's images (a wrong label, a broken photo) to leave out of the next run: the run's
    settings with those files added to data.exclude become the Train form's draft; no file is touched."""
    try:
        files = sample_files(run.path, split, shown)
    except Exception:  # noqa: BLE001 - the gallery above already drew these images; nothing to offer then
        files = None
    if not files:
        st.caption("Built-in data sets have no files to leave out; a folder or zip of your own has.")
        return
    by_index = dict(zip(shown, files))
    picked = st.multiselect("Leave out of the next run", shown, format_func=lambda i: f"#{i} · {by_index[i]}",
                            key=f"{state.KEY_EVAL_LEAVE_OUT}{run.id}:{split}",
                            help="a mislabelled or broken image; your files stay where they are")
    if picked and st.button(f"Train without these {len(picked)}", icon=":material/playlist_remove:",
                            key=state.KEY_EVAL_LEAVE_OUT_GO):
        from cvdemo.data.folder import exclude_entries, excluded_names

        config = RunConfig.from_json_file(run.path / "config.json")
        exclude = exclude_entries([*excluded_names(config.data.exclude), *(by_index[i] for i in picked)])
        state.set_draft(config.replace(data={"exclude": tuple(exclude)}, name=None))
        st.success(f"The Train form now holds this run's settings with {len(exclude)} file"
                   f"{'s' if len(exclude) != 1 else ''} left out (data.exclude): press Start training there.",
                   icon=":material/check:")


matrix_col, cell_col = st.columns([5, 4], gap="large")
with matrix_col:
    st.subheader("Confusion matrix")
    st.caption("Rows: the true class; columns: what the network said. Darker = a larger share of that row; the "
               "numbers count images. The diagonal is right, everything else is a mix-up.")
    event = st.altair_chart(confusion_chart(result), on_select="rerun", selection_mode=state.SELECT_CELL, width="content",
                            key=f"{state.KEY_EVAL_MATRIX}{run.id}:{split}")
with cell_col:
    points = charts.selected(event, state.SELECT_CELL) or []
    cells = [(int(q["t"]), int(q["p"])) for q in points if "t" in q and "p" in q]
    cells = [(t, p) for t, p in cells if 0 <= t < k and 0 <= p < k]
    if not cells:
        st.subheader("Images in a cell")
        st.info("Click a cell of the matrix to see its images here; double-click empty space to clear it.",
                icon=":material/touch_app:")
    else:
        t, p = cells[0]
        idx = samples_in_cell(result, t, p)
        verdict = "correctly recognised" if t == p else f"taken for **{names[p]}**"
        st.subheader(f"{names[t]} → {names[p]}")
        st.markdown(f"{len(idx)} image{'s' if len(idx) != 1 else ''} of **{names[t]}** {verdict}"
                    + (f"; the {GALLERY} the network was surest about:" if len(idx) > GALLERY else ":"))
        if len(idx):
            shown = [int(i) for i in idx[:GALLERY]]
            probs = result.predictions.probs
            charts.gallery(cached.split_images(str(run.path), split, tuple(shown)),
                           [f"#{i} · {probs[i, p]:.0%}" for i in shown])
            st.caption("Under each image: its number in the split and how sure the network was of its answer.")
            leave_out(shown)

bars_col, rel_col = st.columns([5, 4], gap="large")
with bars_col:
    st.subheader("Per class")
    per_class = sorted(result.per_class, key=lambda r: r["f1"])[:40] if k > 40 else result.per_class
    long = pd.DataFrame([{"class": r["class"], "score": s, "value": r[key], "images": r["support"]}
                         for r in per_class
                         for key, s in (("precision", "precision"), ("recall", "recall"), ("f1", "F1"))])
    order = [r["class"] for r in per_class]
    bars = alt.Chart(long, height=alt.Step(9 if len(per_class) > 15 else 12)).mark_bar().encode(
        y=alt.Y("class:N", sort=order, title=None, axis=alt.Axis(labelFontSize=13, labelLimit=160)),
        yOffset=alt.YOffset("score:N", sort=["precision", "recall", "F1"]),
        x=alt.X("value:Q", scale=alt.Scale(domain=[0, 1]), title=None, axis=alt.Axis(format="%")),
        color=alt.Color("score:N", sort=["precision", "recall", "F1"], title=None,
                        scale=alt.Scale(range=["#60a5fa", "#f59e0b", "#16a34a"]),
                        legend=alt.Legend(orient="top")),
        tooltip=["class", "score", alt.Tooltip("value:Q", format=".1%"), "images"])
    st.altair_chart(bars, width="stretch")
    worst = " (the 40 with the lowest F1)" if k > 40 else ""
    st.caption(f"Precision: of the images called this class, the share that are. Recall: of this class's images, "
               f"the share found. F1 balances the two{worst}.")
with rel_col:
    st.subheader("Can its confidence be trusted?")
    bins = pd.DataFrame([b for b in result.reliability if b["count"]])
    bins["range"] = [f"{lo:.0%}–{hi:.0%}" for lo, hi in zip(bins["lower"], bins["upper"])]
    x = alt.X("lower:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"),
              title="confidence (the network's top probability)")
    bars = alt.Chart(bins, height=300).mark_rect(color="#2563eb", opacity=0.85, stroke="white").encode(
        x=x, x2="upper:Q", y2=alt.datum(0), y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"),
                                    title="accuracy in that range"),
        tooltip=[alt.Tooltip("range:N", title="confidence"), alt.Tooltip("accuracy:Q", format=".1%"),
                 alt.Tooltip("confidence:Q", format=".1%", title="mean confidence"), alt.Tooltip("count:Q", title="images")])
    diagonal = alt.Chart(pd.DataFrame({"lower": [0.0, 1.0], "accuracy": [0.0, 1.0]})).mark_line(
        color="#475569", strokeDash=[6, 4]).encode(x="lower:Q", y="accuracy:Q")
    st.altair_chart(diagonal + bars, width="stretch")
    st.caption(f"Each bar: the images the network was that sure about, and how many of them it got right. On the "
               f"dashed diagonal confidence matches accuracy; bars below it mean over-confidence. ECE "
               f"{result.ece:.3f} is the average gap, weighted by how many images each bar holds.")

st.subheader("Most confidently wrong")
wrong = result.most_wrong
if not wrong:
    st.success(f"The network got every one of the {result.n:,} images right.", icon=":material/check:")
else:
    st.caption("The mistakes the network was surest about — often a mislabelled image, an ambiguous one, or a real "
               "blind spot. Under each: true class → what the network said, and how sure it was.")
    charts.gallery(cached.split_images(str(run.path), split, tuple(w["index"] for w in wrong)),
                   [f"{names[w['true']][:14]} → {names[w['pred']][:14]} · {w['confidence']:.0%}" for w in wrong],
                   width=112)


st.subheader("Side by side with another run")
others = [r for r in found if r.id != run.id]
if not others:
    st.caption("Train a second run on the same data to compare their mix-ups here.")
    st.stop()
other = widgets.run_picker(others, state.KEY_EVAL_OTHER, label="Compare with")
try:
    other_result = cached.evaluation(str(other.path), split, cached.checkpoint_stamp(other.path))
except Exception as e:  # noqa: BLE001 - shown as one sentence, never a traceback
    widgets.show_failure(e, f"evaluating run {other.id}")
    st.stop()
if list(other_result.classes) != list(names) or other_result.n != result.n:
    st.info("That run was trained on other data (other classes or another split size): its confusion matrix "
            "cannot be set beside this one. Pick a run on the same data.", icon=":material/info:")
    st.stop()
labels = run_labels([run, other])
for column, (r, res) in zip(st.columns(2, gap="large"), ((run, result), (other, other_result))):
    with column:
        st.markdown(f"**{labels[r.id]}** · top-1 {res.top1:.1%}")
        st.altair_chart(confusion_chart(res, size=380, clickable=False), key=f"{state.KEY_EVAL_PAIR}{r.id}",
                        width="content")
changed = int((result.predictions.preds != other_result.predictions.preds).sum())
st.caption(f"The same {result.n:,} images. The two runs disagree on {changed:,} of them; a cell darker on one "
           "side is a mix-up that run makes more often.")
