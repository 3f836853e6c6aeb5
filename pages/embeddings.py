"""Embeddings: what the network's features look like, projected to 2-D or 3-D with PCA or t-SNE."""

import altair as alt
import pandas as pd
import streamlit as st

from cvdemo.config import RunConfig
from cvdemo.models import get_spec, pretrained_offline
from cvdemo.run_list import runs_with_weights
from pages.ui import cached, charts, state, widgets

METHODS = {"pca": "PCA", "tsne": "t-SNE"}
DIMS = {2: "2-D", 3: "3-D"}
LIMITS = [100, 200, 500, 1000, 2000, 5000]
GALLERY = 24
SHAPES = {"right": "circle", "wrong": "cross", "not this run's classes": "circle"}


def feature_layers(arch: str) -> dict[str | None, str]:
    """Where features can be read -> words for it: the head's input, its output, or the end of a layer group."""
    layers = {"penultimate": "penultimate: what the classifier head reads (default)",
                                     "logits": "logits: the head's output, one number per class"}
    for group, paths in get_spec(arch).groups:
        if group != "head" and paths:
            layers[paths[-1]] = f"after {group} ({paths[-1]}), averaged over the image"
    return layers


def axis_titles(emb) -> list[str]:
    if emb.explained_variance:
        return [f"PC{j + 1} ({v:.0%} of the variance)" for j, v in enumerate(emb.explained_variance)]
    return [f"t-SNE {j + 1}" for j in range(emb.dims)]


def points(emb, with_images: bool) -> pd.DataFrame:
    frame = pd.DataFrame(emb.rows())
    same_names = emb.preds is not None and emb.pred_classes == emb.classes
    frame["answer"] = ["right" if t == p else "wrong" for t, p in zip(frame["true"], frame["predicted"])] \
        if same_names else "not this run's classes"
    if with_images:
        frame["image"] = charts.thumbnails(str(run.path), emb.split, tuple(int(i) for i in emb.indices))
    return frame


def scatter(emb, frame: pd.DataFrame, *, height: int, box: bool, answers_legend: bool = True) -> alt.Chart:
    """Points coloured by true class; wrong answers drawn as crosses; hover shows the image when there is one."""
    x_title, y_title = axis_titles(emb)[:2]
    big = len(emb.classes) > 10
    answers = [a for a in SHAPES if a in set(frame["answer"])]
    tips = (["image"] if "image" in frame else []) + ["true", "predicted", alt.Tooltip("index:Q", title="image #")]
    chart = alt.Chart(frame, height=height).mark_point(filled=True, size=70, opacity=0.8).encode(
        x=alt.X("x:Q", title=x_title, axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("y:Q", title=y_title, axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("true:N", sort=emb.classes, title="true class",
                        scale=alt.Scale(scheme="category20" if big else "category10"),
                        legend=alt.Legend(orient="bottom", columns=min(len(emb.classes), 10), labelFontSize=13,
                                          titleFontSize=13, symbolSize=120, labelLimit=110)
                        if len(emb.classes) <= 40 else None),
        shape=alt.Shape("answer:N", scale=alt.Scale(domain=answers, range=[SHAPES[a] for a in answers]),
                        title="the network's answer", legend=alt.Legend(orient="bottom", labelFontSize=13,
                                                                         titleFontSize=13) if answers_legend else None),
        tooltip=tips)
    if box:
        chart = chart.add_params(alt.selection_interval(name=state.SELECT_BOX, encodings=["x", "y"]))
    return chart


st.title("Embeddings")
st.caption("Every test image becomes a long vector of features inside the network. Squash those vectors to a "
           "picture and see whether the classes form separate islands. Hover a point to see its image; drag a "
           "box to see every image inside it.")

found = runs_with_weights()
if not found:
    widgets.no_trained_runs()
    st.stop()
run = widgets.run_picker(found, state.KEY_EMBED_RUN)
config = RunConfig.from_json_file(run.path / "config.json")
arch = config.model.name
layers = feature_layers(arch)
c1, c2, c3, c4 = st.columns([1, 1, 3, 2])
method = c1.segmented_control("Projection", list(METHODS), format_func=METHODS.get, default="pca", required=True,
                              key=state.KEY_EMBED_METHOD,
                              help="PCA: the directions of largest variance, instant, distances mean something. "
                                   "t-SNE: keeps each image near its nearest neighbours, slower (seconds to a minute), "
                                   "shows clusters better but distances between clusters mean little.")
dims = c2.segmented_control("Dimensions", list(DIMS), format_func=DIMS.get, default=2, required=True,
                            key=state.KEY_EMBED_DIMS,
                            help="2-D: hover a point for its image, drag a box to see many. 3-D: drag to turn.")
layer = c3.selectbox("Features from", list(layers), format_func=layers.get, key=state.KEY_EMBED_LAYER)
limit = c4.select_slider("At most this many images", LIMITS, value=500, key=state.KEY_EMBED_LIMIT,
                         help="a stratified sample of the test split: every class keeps its share")

stamp = cached.checkpoint_stamp(run.path)
try:
    with st.spinner(f"{'t-SNE' if method == 'tsne' else 'PCA'} of the test images' features…"):
        emb = cached.embedding(str(run.path), stamp, method, dims, layer, limit)
except Exception as e:  # noqa: BLE001 - shown as one sentence, never a traceback
    widgets.show_failure(e, "computing the embedding")
    st.stop()

name = "PCA" if method == "pca" else "t-SNE"
metric_col, note_col = st.columns([1, 3])
metric_col.metric("how well the classes separate", f"{emb.knn5:.1%}",
                  help="leave-one-out 5-nearest-neighbour accuracy in this picture: the share of images whose 5 "
                       "closest points are mostly of their own class")
details = (f"the {emb.dims} axes keep {sum(emb.explained_variance):.0%} of the variance"
           if emb.explained_variance else f"perplexity {emb.tsne['perplexity']:g}")
note_col.caption(f"{len(emb.labels):,} test images · {emb.features}-number feature vectors → {emb.dims}-D by "
                 f"{name} ({details}, {emb.seconds:.1f} s). The percentage: for each image, do its 5 nearest "
                 "neighbours in the picture mostly share its class? Crosses are images the network got wrong.")

if dims == 2:
    frame = points(emb, with_images=True)
    plot_col, pick_col = st.columns([5, 3], gap="medium")
    with plot_col:
        event = st.altair_chart(scatter(emb, frame, height=520, box=True), on_select="rerun", width="stretch",
                                selection_mode=state.SELECT_BOX,
                                key=f"{state.KEY_EMBED_SCATTER}{run.id}:{method}:{layer}:{limit}")
    with pick_col:
        box = charts.selected(event, state.SELECT_BOX)
        if not box or "x" not in box or "y" not in box:
            st.subheader("Selected images")
            st.info("Drag a box over some points to see their images here; click outside it to clear.",
                    icon=":material/select_all:")
        else:
            (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
            inside = frame[frame["x"].between(x0, x1) & frame["y"].between(y0, y1)]
            st.subheader(f"{len(inside)} selected image{'s' if len(inside) != 1 else ''}")
            if len(inside):
                counts = inside["true"].value_counts()
                st.caption(" · ".join(f"{c}: {n}" for c, n in counts.items()))
                shown = inside.head(GALLERY)
                charts.gallery(cached.split_images(str(run.path), emb.split, tuple(int(i) for i in shown["index"])),
                               [f"{t[:12]}" + (f" → {p[:12]}" if a == "wrong" else "")
                                for t, p, a in zip(shown["true"], shown["predicted"], shown["answer"])], width=64)
                if len(inside) > GALLERY:
                    st.caption(f"The first {GALLERY} of {len(inside)}.")
else:
    import plotly.express as px
    import plotly.graph_objects as go

    frame = points(emb, with_images=False)
    titles = axis_titles(emb)
    palette = px.colors.qualitative.D3 if len(emb.classes) <= 10 else px.colors.qualitative.Light24
    fig = px.scatter_3d(frame, x="x", y="y", z="z", color="true", category_orders={"true": emb.classes},
                        color_discrete_sequence=palette, hover_data={"predicted": True, "index": True},
                        labels={"x": titles[0], "y": titles[1], "z": titles[2], "true": "true class"}, height=640)
    fig.update_traces(marker={"size": 4, "opacity": 0.85})
    wrong = frame[frame["answer"] == "wrong"]
    if len(wrong):
        fig.add_trace(go.Scatter3d(x=wrong["x"], y=wrong["y"], z=wrong["z"], mode="markers", name="wrong answer",
                                   marker={"symbol": "diamond-open", "size": 6, "color": "black"},
                                   text=[f"{t} taken for {p}, image #{i}" for t, p, i in
                                         zip(wrong["true"], wrong["predicted"], wrong["index"])],
                                   hoverinfo="text"))
    fig.update_layout(margin={"l": 0, "r": 0, "t": 10, "b": 0}, legend={"font": {"size": 14}},
                      scene={"xaxis": {"showticklabels": False}, "yaxis": {"showticklabels": False},
                             "zaxis": {"showticklabels": False}})
    st.plotly_chart(fig, width="stretch")
    st.caption("Drag to turn the cloud, scroll to zoom; hover a point for its class and number. Images on hover "
               "and box selection are in the 2-D view.")

st.subheader("What training changed")
spec = get_spec(arch)
if spec.pretrained is None:
    st.info(f"{arch} has no ImageNet weights to compare with: it learned from scratch. Train a pretrained network "
            "(efficientnet_lite0 ships with the app) to see here the same images before and after fine-tuning.",
            icon=":material/info:")
elif not pretrained_offline(arch):
    st.info(f"{arch}'s ImageNet weights are not on this machine (they download on first use), so there is "
            "nothing to compare with offline.", icon=":material/cloud_off:")
else:
    try:
        with st.spinner(f"{name} of the same images through {arch} with its ImageNet weights…"):
            before = cached.embedding(str(run.path), stamp, method, 2, layer, limit, backbone="pretrained")
            after = emb if dims == 2 else cached.embedding(str(run.path), stamp, method, 2, layer, limit)
    except Exception as e:  # noqa: BLE001
        widgets.show_failure(e, "computing the pretrained network's embedding")
    else:
        st.caption(f"The same {len(emb.labels):,} images, {name} of the same layer: on the left through the "
                   "network as it came from ImageNet, on the right after this run trained it.")
        left, right = st.columns(2, gap="large")
        for col, e, label in ((left, before, "ImageNet weights (before training)"),
                              (right, after, "this run (after training)")):
            col.metric(f"{label}: classes separate", f"{e.knn5:.1%}")
            col.altair_chart(scatter(e, points(e, with_images=True), height=380, box=False, answers_legend=False),
                             width="stretch")
        if config.model.freeze == "backbone" and not config.train.unfreeze_at and layer != "logits":
            st.caption("This run trained only its new head and kept the ImageNet backbone frozen, so the features "
                       "are the same before and after: what changed is how the head separates them.")
