"""Data: choose where the images come from, and look at them before training."""

import json
import re
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from cvdemo import limits, runs, uploads
from cvdemo.data import AUGMENT_PRESETS, SOURCES, decode_image
from cvdemo.errors import CvdemoError
from pages.ui import audit_view, cached, charts, state, widgets

KINDS = {"digits": "Built-in digits", "torchvision": "A torchvision set", "zip": "A zip file",
         "images": "Image files", "folder": "A folder on this computer"}
AUGMENT_NOTES = {"none": "no change: every epoch sees the same pixels",
                 "standard": "shift by up to 1/8 of the side (reflect padding) + mirror left-right",
                 "rrc": "random-resized crop: zoom into 35–100% of the image + mirror",
                 "trivialaugment": "one random colour or geometry change of random strength + mirror"}

st.title("Data")
st.caption("Pick the images the network will learn from, and look at them first. "
           "The Train page uses the data chosen here.")

config = state.draft()
current = config["data"]["source"]
info = st.session_state.get(state.KEY_DATA_INFO, {})
kinds = list(KINDS)
guess = info.get("kind") or ("digits" if current == "digits" else "torchvision" if current in SOURCES else "folder")
kind = st.radio("Where are the images?", kinds, index=kinds.index(guess), format_func=KINDS.get,
                horizontal=True, key=state.KEY_DATA_KIND)
remembered = current if kind == guess else None  # the draft's data, when it is of this kind

source, label = None, None
if kind == "digits":
    source, label = "digits", "the built-in digits"
    st.caption("1,797 handwritten digits of 8×8 pixels from scikit-learn: always available, trains in seconds.")
elif kind == "torchvision":
    names = list(SOURCES[1:])
    name = st.selectbox("Data set", names, index=names.index(current) if current in names else 0,
                        key=state.KEY_DATA_TORCHVISION)
    st.caption("Downloaded once into the cache folder (~/.cache/cvdemo or $CVDEMO_CACHE). "
               "Without internet only the sets already there load.")
    if st.button(f"Load {name}", type="primary", icon=":material/download:", key=state.KEY_DATA_LOAD) \
            or remembered == name:
        source, label = name, name
elif kind == "zip":
    upload = st.file_uploader("A .zip of images: one folder per class, or train/ and test/ folders of classes",
                              type=["zip"], max_upload_size=limits.max_zip_mb(), key=state.KEY_DATA_ZIP)
    if upload is not None:
        try:
            source, label = str(uploads.save_zip(upload.getvalue(), name=upload.name)), upload.name
        except CvdemoError as e:
            widgets.show_error(e)
    elif remembered:
        source, label = remembered, info.get("label", runs.data_display_name(remembered))
elif kind == "images":
    files = st.file_uploader("Photos: give each one its class below", accept_multiple_files=True,
                             type=["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"],
                             max_upload_size=limits.max_image_mb(), key=state.KEY_DATA_IMAGES) or []
    if files:
        columns = st.columns(6)
        items = []
        for i, f in enumerate(files[:300]):
            with columns[i % 6]:
                data = f.getvalue()
                try:
                    st.image(decode_image(data, f.name), width="stretch")
                except CvdemoError as e:
                    widgets.show_error(e)
                default = re.split(r"[-_ .0-9]", Path(f.name).stem)[0] or "class"
                items.append((st.text_input(f"class of {f.name}", default, key=f"{state.KEY_DATA_CLASS}{i}"),
                              f.name, data))
        if st.button(f"Make a data set of these {len(items)} images", type="primary", key=state.KEY_DATA_MAKE):
            try:
                source, label = str(uploads.save_labelled_images(items)), f"{len(items)} uploaded images"
            except CvdemoError as e:
                widgets.show_error(e)
    if source is None and remembered:
        source, label = remembered, info.get("label", runs.data_display_name(remembered))
else:
    path = st.text_input("Folder (or .zip) path on this computer", remembered or "", key=state.KEY_DATA_FOLDER,
                         placeholder="/home/teacher/photos", help="one sub-folder per class, or train/ + test/")
    source, label = (path.strip(), path.strip()) if path.strip() else (None, None)

if source is None:
    st.info("Choose the images above to see them here.")
    st.stop()

builtin = source in SOURCES
if builtin:
    size = None
else:  # folders are resized when loaded: show them at the size the network will see
    from cvdemo.models import get_spec

    size = config["data"]["image_size"] or get_spec(config["model"]["name"]).input_size
try:
    overview = cached.data_overview(source, size)
except CvdemoError as e:
    widgets.show_error(e)
    st.stop()

classes, sizes = overview["classes"], overview["sizes"]
state.update_draft(data={"source": source, **({"skip_bad": True} if overview["skipped"] else {}),
                         **({"exclude": []} if source != current else {})})  # a list for other data would mislead
st.session_state[state.KEY_DATA_INFO] = {"kind": kind, "source": source, "label": label,
                                         "classes": len(classes), "channels": overview["channels"],
                                         "image_size": overview["image_size"]}  # shared size (H, W), or None
st.success(f"The Train page will use **{label}**: {len(classes)} classes, "
           f"{sum(sizes.values()):,} images.", icon=":material/check_circle:")
if overview["skipped"]:
    st.warning(f"{len(overview['skipped'])} files could not be read and are left out: "
               + "; ".join(overview["skipped"][:20]) + (" …" if len(overview["skipped"]) > 20 else ""))

h, w = overview["image_size"] or ("?", "?")
cols = st.columns(6)
for col, (name, value) in zip(cols, [("classes", len(classes)), ("train images", sizes["train"]),
                                     ("validation images", sizes["val"]), ("test images", sizes["test"]),
                                     ("image size", f"{h}×{w}"),
                                     ("colour", "grey" if overview["channels"] == 1 else "RGB")]):
    col.metric(name, f"{value:,}" if isinstance(value, int) else value)

left, right = st.columns([3, 1])
with left:
    st.subheader("Images per class")
    st.caption("A balanced data set has bars of equal height; validation and test are held out from training.")
    counts = pd.DataFrame([{"class": c, "split": split, "images": overview["counts"][split][i]}
                           for split in ("train", "val", "test") for i, c in enumerate(classes)])
    chart = alt.Chart(counts, height=300).mark_bar().encode(
        x=alt.X("class:N", sort=classes, title=None, axis=alt.Axis(labelAngle=0 if len(classes) <= 12 else -60)),
        y=alt.Y("images:Q", title="images"),
        color=alt.Color("split:N", sort=["train", "val", "test"], legend=alt.Legend(orient="right", title=None)),
        order=alt.Order("split_order:Q"), tooltip=["class", "split", "images"],
    ).transform_calculate(split_order="datum.split == 'train' ? 0 : datum.split == 'val' ? 1 : 2")
    st.altair_chart(chart, width="stretch")
with right:
    st.subheader("Mean and std")
    st.caption("Of the training pixels, in [0, 1]. Networks trained from scratch subtract the mean and "
               "divide by the std.")
    channels = ["grey"] if len(overview["mean"]) == 1 else ["red", "green", "blue"]
    st.dataframe(pd.DataFrame({"channel": channels, "mean": overview["mean"], "std": overview["std"]}),
                 hide_index=True, placeholder=widgets.MISSING,
                 column_config={"mean": st.column_config.NumberColumn(format="%.3f"),
                                "std": st.column_config.NumberColumn(format="%.3f")})

st.subheader("Examples of each class")
st.caption("Training images as stored" + ("" if builtin else f", resized to {h}×{w} as the network sees them")
           + (f"; the first {len(overview['samples'])} classes of {len(classes)}"
              if len(overview["samples"]) < len(classes) else "") + ". In brackets: training images of the class.")
per_row = 10 if len(overview["samples"]) <= 10 else 12
for start in range(0, len(overview["samples"]), per_row):
    row = list(overview["samples"].items())[start:start + per_row]
    for column, (name, images) in zip(st.columns(per_row), row):
        count = overview["counts"]["train"][classes.index(name)]
        column.image(charts.tile(images[:4], columns=1), caption=f"{name} ({count})", width="content")

st.subheader("Augmentation preview")
st.caption("The same training images after each random augmentation preset (chosen on the Train page). "
           "Augmentation shows the network a slightly different picture every epoch.")
draft = state.draft()
try:
    preview = cached.augment_preview(source, size, json.dumps(draft))
except CvdemoError as e:
    widgets.show_error(e)
    st.stop()
t = draft["train"]
yours = f"as your run sees them: augment {draft['data']['augment']}" + (f", mixup {t['mixup']}" if t["mixup"] else "") \
    + (f", cutmix {t['cutmix']}" if t["cutmix"] else "")
shown = [("original", "before augmentation")] + [(p, AUGMENT_NOTES.get(p, "")) for p in AUGMENT_PRESETS if p != "none"]
shown += [("yours", yours)]
grid = st.columns(2)
for i, (preset, note) in enumerate(shown):
    grid[i % 2].image(charts.tile(preview[preset], min_side=88), width="content",
                      caption=note if preset == "yours" else f"{preset}: {note}")

st.subheader("Check this data")
audit_view.section(source, overview["image_size"][0] if overview["image_size"] else None, state.draft(), builtin)
