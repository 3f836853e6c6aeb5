"""Model: pick an architecture, see how big it is and which parts will train."""

import json

import altair as alt
import pandas as pd
import streamlit as st

from cvdemo.errors import CvdemoError
from cvdemo.models import get_spec, list_models, pretrained_offline
from cvdemo.models.sizing import input_size_advice
from pages.ui import cached, state, widgets


def use_size(size: int) -> None:
    """"Use image size N": the draft's image size, which the Train form shows, becomes N."""
    state.update_draft(data={"image_size": size})


def size_advice(model: str, data_size: list[int] | tuple[int, int] | None, chosen: int | None) -> None:
    """When the data's images are much smaller than the network's default input: what that costs, and a
    button for a size that suits them (cvdemo.models.sizing)."""
    advice = input_size_advice(model, max(data_size) if data_size else None)
    if advice is None:
        return
    if chosen:
        st.caption(f"Image size {chosen} is set for this data (the network's default is {advice.default}).")
        return
    st.info(advice.message, icon=":material/photo_size_select_large:")
    st.button(f"Use image size {advice.size}", on_click=use_size, args=(advice.size,), key=state.KEY_MODEL_SIZE)


st.title("Model")
st.caption("Choose the network, and whether it starts from ImageNet weights. The Train page uses the model "
           "chosen here.")

config = state.draft()
data = st.session_state.get(state.KEY_DATA_INFO) or {"label": "the built-in digits", "classes": 10, "channels": 1}
names = list_models()
current = config["model"]["name"] if config["model"]["name"] in names else names[0]

left, right = st.columns([2, 3], gap="large")
with left:
    name = st.selectbox("Architecture", names, index=names.index(current), key=state.KEY_MODEL_NAME,
                        help="from the 1998 LeNet to EfficientNet; small networks first")
    spec = get_spec(name)
    st.markdown(f"**{spec.description}**")
    has_weights = spec.pretrained is not None
    pretrained = st.toggle("Start from ImageNet weights (pretrained)", disabled=not has_weights,
                           value=has_weights and config["model"]["pretrained"], key=state.KEY_MODEL_PRETRAINED)
    pretrained = pretrained and has_weights
    if not has_weights:
        st.caption("This architecture has no pretrained weights: it always learns from scratch.")
    elif spec.pretrained == "package":
        st.caption(":material/check_circle: Its ImageNet weights ship in a Python package: works offline.")
    elif pretrained_offline(name):
        st.caption(":material/check_circle: Its ImageNet weights are already downloaded on this computer.")
    else:
        st.caption(":material/cloud_download: Its ImageNet weights are downloaded on first use (needs internet "
                   "once).")
    labels = widgets.freeze_choices(name)
    options = list(labels)
    kept = config["model"]["freeze"] if config["model"]["freeze"] in options and pretrained else "none"
    freeze = st.selectbox("Freeze (keep the pretrained weights of)", options, index=options.index(kept),
                          format_func=labels.get, disabled=not pretrained, key=state.KEY_MODEL_FREEZE,
                          help="Frozen layers keep their ImageNet features: fast, and good with few images.")
    freeze = freeze if pretrained else "none"
    state.update_draft(model={"name": name, "pretrained": pretrained, "freeze": freeze})
    st.caption(f"The new head is sized for {data.get('label', 'the chosen data')}: {data['classes']} classes.")
    size_advice(name, data.get("image_size"), config["data"].get("image_size"))

in_channels = data["channels"] if spec.flexible_channels and not pretrained else 3
try:
    summary = cached.model_summary(json.dumps(state.draft()), data["classes"], in_channels)
except CvdemoError as e:
    widgets.show_error(e)
    st.stop()

with right:
    cols = st.columns(3)
    cols[0].metric("parameters", f"{summary['total']:,}")
    cols[1].metric("trainable", f"{summary['trainable']:,}", help="at the first epoch")
    cols[2].metric("input size", f"{spec.input_size}×{spec.input_size}")
    cols = st.columns(3)
    cols[0].metric("input channels", in_channels)
    cols[1].metric("classifier head", spec.head)
    cols[2].metric("CAM layer", spec.cam_layer, help="the last layer with a spatial map: Grad-CAM looks here")

st.subheader("Layer groups, from input to output")
st.caption("Each group can be frozen or given its own learning rate (Train page: lr decay, group lr mult, "
           "unfreeze at). The last group is the classifier head, always new and sized for your classes.")
table = pd.DataFrame(summary["groups"])
chart_col, table_col = st.columns([2, 3])
with chart_col:
    chart = alt.Chart(table, height=50 + 34 * len(table)).mark_bar().encode(
        y=alt.Y("group:N", sort=list(table["group"]), title=None),
        x=alt.X("parameters:Q", title="parameters"),
        color=alt.Color("frozen:N", scale=alt.Scale(domain=["trains", "frozen"], range=["#2563eb", "#94a3b8"]),
                        legend=alt.Legend(orient="right", title=None)),
        tooltip=["group", alt.Tooltip("parameters:Q", format=","), "trains"],
    ).transform_calculate(frozen="datum.trains == 'frozen' ? 'frozen' : 'trains'")
    st.altair_chart(chart, width="stretch")
with table_col:
    st.dataframe(table, hide_index=True, placeholder=widgets.MISSING, width="stretch",
                 column_config={"parameters": st.column_config.NumberColumn(format="localized"),
                                "learning rate": st.column_config.NumberColumn(format="%.2g")})
