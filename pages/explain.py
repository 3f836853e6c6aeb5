"""Explain: why did the network say that? Attribution heat maps over a photo, and what its filters see."""

import hashlib
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from PIL import Image

from cvdemo import limits, uploads
from cvdemo.config import RunConfig
from cvdemo.data import decode_image
from cvdemo.errors import CvdemoError
from cvdemo.explain import (
    BY_NAME,
    FAMILY_NOTES,
    Explanation,
    Faithfulness,
    by_family,
    estimate_seconds,
    in_words,
    layer_names,
    model_view,
    overlay,
)
from cvdemo.plots import display_size
from cvdemo.run_list import run_labels, runs_with_weights
from pages.ui import attack_section, cached, charts, state, widgets

IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]
SLOW_SECONDS = 10.0  # warn before a method expected to take longer than this
DEFAULT_METHODS = ("saliency", "gradcam")
PER_ROW = 4  # maps side by side: big enough to see on a projector


def name(method: str) -> str:
    return BY_NAME[method].display


def family_key(family: str) -> str:
    return f"{state.KEY_EXPLAIN_METHODS}:{family}"


ANSWER = "answer"  # the target selector's first option: whatever class the network predicts
VERDICT_BADGES = {"better": ":green-badge[beats random maps]", "mixed": ":orange-badge[beats random on one check]",
                  "worse": ":red-badge[no better than random]"}
INPUTS = {"upload": ":material/upload: Upload a photo", "camera": ":material/photo_camera: Take a photo",
          "test": ":material/grid_view: A test image of the run"}

st.title("Explain")
st.caption("Why did the network say that? Give it a photo, see its best guesses, then see which pixels made it "
           "choose a class — with several methods side by side, each checked against random heat maps.")

done = [r for r in runs_with_weights() if r.state == "completed"]
sources = {cached.PRETRAINED: "EfficientNet-Lite0 trained on ImageNet (1,000 everyday classes, no training needed)"}
names = run_labels(done)  # name, or model, data and the settings that set it apart
sources |= {str(r.path): f"Run {names[r.id]} · test top-1 {r.test_top1 or 0:.1%}" for r in done}
source = st.selectbox("Network", list(sources), format_func=sources.get, key=state.KEY_EXPLAIN_WITH)
is_run = source != cached.PRETRAINED

inputs = [i for i in INPUTS if is_run or i != "test"]
how = st.segmented_control("Image", inputs, format_func=INPUTS.get, default="upload", required=True,
                           key=state.KEY_EXPLAIN_INPUT)
image, image_name = None, ""
try:
    if how == "upload":
        f = st.file_uploader("Photo", type=IMAGE_TYPES, max_upload_size=limits.max_image_mb(), key=state.KEY_EXPLAIN_UPLOAD)
        if f is not None:
            uploads.check_size(f.name, f.getvalue(), limits.max_image_mb())
            image, image_name = decode_image(f.getvalue(), f.name), f.name
    elif how == "camera":
        f = st.camera_input("Camera", key=state.KEY_EXPLAIN_CAMERA)
        if f is not None:
            image, image_name = decode_image(f.getvalue(), "the camera photo"), "camera photo"
    else:
        from cvdemo.evaluate import load_split

        test, classes = load_split(source, "test")
        i = st.number_input(f"Test image number (0 to {len(test) - 1})", 0, max(len(test) - 1, 0), 0,
                            key=state.KEY_EXPLAIN_PICK)
        pixels = cached.split_images(source, "test", (int(i),))[0]
        image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
        image_name = f"test image #{i}, a {classes[int(test.labels[int(i)])]}"
except Exception as e:  # noqa: BLE001 - shown as one sentence, never a traceback
    widgets.show_failure(e, "reading the image")
    st.stop()
if image is None:
    st.info("Upload a photo (or take one) to see what the network thinks it is and why. A cat, a cup, a car: the "
            "ImageNet network knows 1,000 everyday things." if not is_run else
            "Upload a photo, take one, or pick a test image of the run.", icon=":material/add_photo_alternate:")
    st.stop()

try:
    stamp = cached.checkpoint_stamp(Path(source)) if is_run else 0.0
    classifier = cached.load_classifier(source, stamp)
    arch = RunConfig.from_json_file(Path(source) / "config.json").model.name if is_run else \
        cached.PRETRAINED.split(":", 1)[1]
except Exception as e:  # noqa: BLE001
    widgets.show_failure(e, "loading the network")
    st.stop()
digest = hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()[:16]
key = (source, stamp, digest)
view = display_size(model_view(classifier, image))
classes = classifier.classes

picture_col, guesses_col, settings_col = st.columns([2, 3, 3], gap="large")
with picture_col:
    st.image(view, caption=f"{image_name} — what the network sees", width="stretch")
with guesses_col:
    guesses = cached.top_k(classifier, [image], key, 5)[0]
    st.markdown(f"### {guesses[0]['class']} · {guesses[0]['prob']:.0%}")
    chart = alt.Chart(pd.DataFrame(guesses), height=34 * len(guesses) + 20).mark_bar().encode(
        y=alt.Y("class:N", sort="-x", title=None, axis=alt.Axis(labelLimit=240, labelFontSize=14)),
        x=alt.X("prob:Q", title="probability", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.condition(alt.datum.index == guesses[0]["index"], alt.value("#2563eb"), alt.value("#93c5fd")),
        tooltip=["class", alt.Tooltip("prob:Q", format=".1%")])
    st.altair_chart(chart, width="stretch")
with settings_col:
    choice = st.selectbox("Explain the class", [ANSWER, *range(len(classes))], key=state.KEY_EXPLAIN_TARGET,
                          format_func=lambda c: f"the network's answer ({guesses[0]['class']})" if c == ANSWER
                          else classes[c], help="why the network would say this class (type to search)")
    target = None if choice == ANSWER else int(choice)
    alpha = st.slider("Heat-map opacity", 0.0, 1.0, 0.5, 0.05, key=state.KEY_EXPLAIN_ALPHA)

# The methods are picked in a form: choosing eight costs one run (one pass, one progress bar), not eight.
with st.form(f"{state.KEY_EXPLAIN_METHODS}_form", border=True):
    st.markdown("**Methods** — pick any number, then press *Explain*. The **?** by a family says what it measures.")
    families = by_family()
    for family, members in families.items():
        st.pills(family.capitalize() if family != "CAM" else family, [m.name for m in members], format_func=name,
                 selection_mode="multi", key=family_key(family), help=FAMILY_NOTES[family],
                 default=[m.name for m in members if m.name in DEFAULT_METHODS])
    st.form_submit_button("Explain", type="primary", icon=":material/visibility:")
methods = [m.name for members in families.values() for m in members
           if m.name in (st.session_state.get(family_key(m.family)) or [])]
with st.expander("What each method shows"):
    st.markdown("\n".join(f"- **{family}** ({FAMILY_NOTES[family]}): " + "; ".join(
        f"*{m.display}* — {m.description}" for m in members) for family, members in families.items()))

if not methods:
    st.info("Pick one or more methods above and press Explain to see their heat maps.", icon=":material/layers:")
device = next(classifier.model.parameters()).device
for method in [m for m in methods if BY_NAME[m].cost == "slow"]:
    if device.type == "cpu":
        seconds = estimate_seconds(classifier.model, classifier.to_input(image), method)
        if seconds > SLOW_SECONDS:
            st.warning(f"{name(method)} is slow on a CPU: roughly {seconds:.0f} s for this network and image.",
                       icon=":material/hourglass:")
results: dict[str, Explanation | Exception] = {}
if methods:
    bar = st.progress(0.0)
    for i, method in enumerate(methods):
        bar.progress(i / len(methods), text=f"Explaining with {name(method)} · {i} of {len(methods)} maps done")
        try:
            results[method] = cached.explanation(classifier, key, image, method, target, arch)
        except Exception as e:  # noqa: BLE001 - shown under its own map as one sentence
            results[method] = e
    bar.empty()
    explained = next((r for r in results.values() if not isinstance(r, Exception)), None)
    st.caption(("" if explained is None else f"Why **{classes[explained.target]}** "
                f"({explained.target_prob:.0%})? ") + "Red = strong evidence for the class, blue = none. Each map "
               "is checked against random maps just as smooth: when hiding the pixels it points at lowers the "
               "network's confidence faster than hiding random ones, the map shows what the network really used.")
slots: dict[str, tuple[Explanation, Any]] = {}  # each drawn map, and the place for its checks under it
for row in range(0, len(methods), PER_ROW):
    for col, method in zip(st.columns(PER_ROW, gap="medium"), methods[row:row + PER_ROW]):
        with col:
            result = results[method]
            if isinstance(result, Exception):
                st.markdown(f"**{name(method)}**")
                widgets.show_failure(result, name(method))
                continue
            st.image(overlay(view, result.map, alpha=alpha), width="stretch", caption=name(method))
            slots[method] = result, st.empty()
            slots[method][1].caption(f"{result.seconds:.1f} s · checking the map against random maps…")
# The checks cost ~70 forward passes a map, the map itself one or a few: every map is drawn first, then the
# checks fill in under them one by one.
done_maps: dict[str, tuple[Explanation, Faithfulness]] = {}
for method, (exp, slot) in slots.items():
    try:
        f = cached.checks(classifier, key, image, method, target, arch)
    except Exception as e:  # noqa: BLE001 - shown under its own map as one sentence
        with slot.container():
            widgets.show_failure(e, f"checking {name(method)}")
        continue
    done_maps[method] = exp, f
    with slot.container():
        st.markdown(f"{VERDICT_BADGES[f.verdict()]} {exp.seconds:.1f} s")
        st.caption(in_words(f))
if done_maps:
    with st.expander("The numbers behind the checks"):
        st.dataframe(pd.DataFrame([{
            "method": name(m), "seconds": exp.seconds,
            "deletion": f.deletion_auc, "deletion, random maps": f.deletion_random_auc,
            "insertion": f.insertion_auc, "insertion, random maps": f.insertion_random_auc,
            "infidelity": f.infidelity, "sensitivity": f.sensitivity}
            for m, (exp, f) in done_maps.items()]), hide_index=True, placeholder=widgets.MISSING, width="stretch",
            column_config={c: st.column_config.NumberColumn(format="%.3f") for c in (
                "seconds", "deletion", "deletion, random maps", "insertion", "insertion, random maps",
                "infidelity", "sensitivity")})
        st.caption("**Deletion**: the class's average probability while the map's hottest pixels are greyed out "
                   "first (lower is better). **Insertion**: while they are copied into a blurred copy first "
                   "(higher is better). Deletion alone can mislead when the object fills the photo. "
                   "**Infidelity** (how badly the map predicts the network's change under slight noise) and "
                   "**sensitivity** (how much the map itself changes when the photo barely does) are better when "
                   "lower. `cvdemo explain` adds **ROAD** (slower: how much more removing the hottest pixels "
                   "hurts than removing the coldest; higher is better).")

if methods:
    st.subheader("Sanity check: does the map depend on what the network learned?")
    st.caption("The same method on the same network with random weights (Adebayo et al. 2018). A map that "
               "barely changes (rank correlation near 1) shows the image's edges, not the network's reasons.")
    check_method = st.selectbox("Method to check", methods, format_func=name, key=state.KEY_EXPLAIN_SANITY)
    try:
        with st.spinner("Explaining with random weights…"):
            check = cached.randomization(classifier, key, image, check_method, target, arch)
        trained_col, random_col = st.columns(2, gap="medium")
        trained_col.image(overlay(view, check["trained"].map, alpha=alpha), width="stretch",
                          caption="trained network")
        random_col.image(overlay(view, check["randomized"].map, alpha=alpha), width="stretch",
                         caption="same network, random weights")
        rho = check["spearman"]
        st.markdown(f"Rank correlation (Spearman) **{rho:.2f}**: " + (
            "the map hardly depends on the learned weights." if rho > 0.5 else
            "the map depends on what the network learned." if rho == rho else "undefined (a constant map)."))
    except Exception as e:  # noqa: BLE001
        widgets.show_failure(e, "the sanity check")

st.subheader("Filters and feature maps")
st.caption("The first layer's filters are the patterns the network looks for directly in the pixels. A feature "
           "map shows where in this image one filter responded: early layers find edges and colours, later "
           "ones parts of objects.")
try:
    from torch import nn

    from cvdemo.filters import first_layer_filters
    from cvdemo.models import module_paths

    first, weights = first_layer_filters(classifier.model)
    convs = module_paths(classifier.model, nn.Conv2d)  # where feature maps can be read, input side first
    filters_col, maps_col = st.columns([2, 3], gap="large")
    with filters_col:
        plain = layer_names(classifier.model, arch)
        st.image(charts.filters_picture(weights), width="content",
                 caption=f"the {len(weights)} filters of the {plain.get(first, first)}, each "
                         f"{'×'.join(map(str, weights.shape[1:]))} (in the code: '{first}')")
    with maps_col:
        layer = st.selectbox("Feature maps of layer", convs, key=state.KEY_EXPLAIN_MAPS_LAYER,
                             format_func=lambda p: f"{plain.get(p, p)}  —  {p}" if plain.get(p, p) != p else p,
                             help="every convolution of the network, from the pixels up: its layer group, its "
                                  "place in the group, then its name in the code")
        maps = cached.feature_maps_of(classifier, key, image, layer)
        shown = f"the {len(maps)} maps" if len(maps) <= 64 else f"64 of the {len(maps)} maps"
        st.image(charts.feature_maps_picture(maps), width="stretch",
                 caption=f"{shown} of the {plain.get(layer, layer)}, {maps.shape[1]}×{maps.shape[2]} each, each on "
                                 "its own scale: "
                         "bright = strong response")
except (CvdemoError, RuntimeError, ValueError) as e:
    widgets.show_failure(e, "drawing the filters")

attack_section.show(classifier, image, key)
