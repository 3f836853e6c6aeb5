"""Classify: upload photos and get a network's top guesses, from a trained run or an ImageNet network."""


import altair as alt
import pandas as pd
import streamlit as st

from cvdemo import limits, uploads
from cvdemo.data import decode_image
from cvdemo.errors import CvdemoError
from cvdemo.run_list import run_labels, runs_with_weights
from pages.ui import cached, state, widgets

IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]

st.title("Classify")
st.caption("Upload photos and see what a network thinks they are. The ImageNet network knows 1,000 everyday "
           "classes without any training; a run knows only the classes it was trained on.")

done = [r for r in runs_with_weights() if r.state == "completed"]
labels = {cached.PRETRAINED: "EfficientNet-Lite0 trained on ImageNet (1,000 classes, no training needed)"}
names = run_labels(done)  # name, or model, data and the settings that set it apart
labels |= {str(r.path): f"Run {names[r.id]} · test top-1 {r.test_top1 or 0:.1%}" for r in done}
left, right = st.columns([4, 1])
source = left.selectbox("Network", list(labels), format_func=labels.get, key=state.KEY_CLASSIFY_WITH)
k = right.slider("Guesses per photo (top-k)", 1, 10, 5, key=state.KEY_CLASSIFY_TOPK)
files = st.file_uploader("Photos", accept_multiple_files=True, type=IMAGE_TYPES, max_upload_size=limits.max_image_mb(),
                         key=state.KEY_CLASSIFY_FILES)
if not files:
    st.info("Upload one or more photos (PNG, JPEG, …) to classify them.")
    st.stop()

try:
    stamp = 0.0 if source == cached.PRETRAINED else cached.checkpoint_stamp(source)
    classifier = cached.load_classifier(source, stamp)
except (CvdemoError, OSError) as e:
    widgets.show_error(e if isinstance(e, CvdemoError) else CvdemoError(f"cannot read the run's checkpoint: {e}"))
    st.stop()

named = []
for f in files:
    try:
        data = f.getvalue()
        uploads.check_size(f.name, data, limits.max_image_mb())
        named.append((f.name, data, decode_image(data, f.name)))
    except CvdemoError as e:
        widgets.show_error(e)
if not named:
    st.stop()

results = cached.top_k(classifier, [im for _, _, im in named], (source, stamp, tuple(d for _, d, _ in named)), k)
table = pd.DataFrame([{"image": name, "rank": rank, "class": g["class"], "probability": g["prob"]}
                      for (name, _, _), guesses in zip(named, results) for rank, g in enumerate(guesses, 1)])

for (name, _, image), guesses in zip(named[:50], results):
    with st.container(border=True):
        picture, bars = st.columns([1, 3])
        picture.image(image, caption=name, width="stretch")
        bars.markdown(f"### {guesses[0]['class']} · {guesses[0]['prob']:.0%}")
        chart = alt.Chart(pd.DataFrame(guesses), height=32 * len(guesses) + 20).mark_bar().encode(
            y=alt.Y("class:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320, labelFontSize=14)),
            x=alt.X("prob:Q", title="probability", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            tooltip=["class", alt.Tooltip("prob:Q", format=".1%")])
        bars.altair_chart(chart, width="stretch")

st.subheader("All predictions")
st.dataframe(table, hide_index=True, placeholder=widgets.MISSING, width="stretch",
             column_config={"probability": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)})
st.download_button("Download as CSV", table.to_csv(index=False), file_name="predictions.csv", mime="text/csv",
                   icon=":material/download:", key=state.KEY_CLASSIFY_CSV)
