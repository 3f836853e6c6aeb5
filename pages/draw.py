"""Draw: a student draws a digit, and the network's answer, its top-5 and a heat map follow every stroke."""

from pathlib import Path

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.data.drawing import EMPTY, run_drawing_style
from cvdemo.errors import CvdemoError, DataError
from cvdemo.explain import BY_NAME, overlay
from cvdemo.explain.canvas import DRAW_METHODS, read_canvas
from cvdemo.recipes import load_recipe
from cvdemo.run_list import runs_with_weights
from pages.ui import bars, cached, charts, state, widgets

CANVAS = 320        # pixels: big enough to draw on with a finger, and to see from the back of a room
VIEW = 256          # pixels: the network's image, enlarged with square (nearest-neighbour) pixels
FRAME_GREY = 150
METHOD_NAMES = {"saliency": "Saliency (which pixels would change the answer most)",
                "gradcam": "Grad-CAM (which region the last convolution used)"}

st.title("Draw")
st.caption("Draw a digit with the mouse or a finger and watch the network decide as you draw. On the right is the "
           "picture the network actually gets: your drawing cropped to the ink, centred and shrunk to the size of "
           "its training images — so a digit drawn small, or in a corner, reads the same. The bars are its five "
           "best guesses; the heat map shows which pixels of that small picture pushed it towards its answer.")

drawable = [(r, style) for r in runs_with_weights() if (style := run_drawing_style(r.path))]
if not drawable:
    st.info("No network trained on digits yet. Train the *Digits with LeNet* lesson (under a minute on a laptop), "
            "then come back and draw.", icon=":material/draw:")
    if st.button("Train the digits lesson", type="primary", icon=":material/play_arrow:", key=state.KEY_DRAW_TRAIN):
        try:
            run_dir = runs.launch(load_recipe("lenet-digits").config, runs.default_root())
            st.session_state[state.KEY_WATCH_RUN] = run_dir.name
            st.success(f"Started run {run_dir.name}: open **Train** to watch it learn; it appears here after its "
                       "first epoch.")
        except CvdemoError as e:
            widgets.show_error(e)
    st.stop()

styles = {str(r.path): style for r, style in drawable}
run_col, pen_col, method_col = st.columns([3, 2, 2], gap="medium")
with run_col:
    run = widgets.run_picker([r for r, _ in drawable], state.KEY_DRAW_RUN, "Network (trained on digit-like images)")
with pen_col:
    pen = st.slider("Pen width", 4, 48, 24, 2, key=state.KEY_DRAW_PEN, help="canvas pixels")
with method_col:
    method = st.radio("Heat map", DRAW_METHODS, format_func=lambda m: METHOD_NAMES[m], key=state.KEY_DRAW_METHOD)

source = str(run.path)
try:
    stamp = cached.checkpoint_stamp(Path(source))
    classifier = cached.load_classifier(source, stamp)
    arch = RunConfig.from_json_file(Path(source) / "config.json").model.name
except Exception as e:  # noqa: BLE001 - one sentence, never a traceback
    widgets.show_failure(e, "loading the network")
    st.stop()
style = styles[source]


def framed(picture: np.ndarray, border: int = 4) -> np.ndarray:
    """A mid-grey frame around a picture, so white ink at its edge does not melt into the white page."""
    pad = ((border, border), (border, border)) + ((0, 0),) * (picture.ndim - 2)
    return np.pad(picture, pad, constant_values=FRAME_GREY)


@st.fragment
def board() -> None:
    """Canvas and answer: a stroke reruns only this fragment, so the page around it does not flash."""
    draw_col, sees_col, answer_col = st.columns([4, 3, 4], gap="large")
    with draw_col:
        clears = st.session_state.setdefault(state.KEY_DRAW_CLEARS, 0)
        drawn = st_canvas(stroke_width=pen, stroke_color="#ffffff", background_color="#000000",
                          update_streamlit=True, height=CANVAS, width=CANVAS, drawing_mode="freedraw",
                          return_image_data=True, key=f"{state.KEY_DRAW_CANVAS}{clears}")
        if st.button("Clear", icon=":material/ink_eraser:", key=state.KEY_DRAW_CLEAR):
            st.session_state[state.KEY_DRAW_CLEARS] = clears + 1
            st.rerun(scope="fragment")
    image = drawn.image_data
    try:
        if image is None:
            raise DataError(EMPTY)
        with cached.model_lock():  # the network (and its hooks) are shared by every session
            reading = read_canvas(classifier, np.asarray(image), style, method=method, arch=arch)
    except DataError as e:
        if str(e) != EMPTY:
            with sees_col:
                widgets.show_error(e)
        else:
            sees_col.info("Draw a digit on the black square, as big as you like: the network's answer follows "
                          "every stroke.", icon=":material/gesture:")
        return
    except Exception as e:  # noqa: BLE001
        with sees_col:
            widgets.show_failure(e, "reading the drawing")
        return
    pixels = np.asarray(reading.picture)
    big = charts.enlarge(pixels[None], VIEW)
    side = f"{pixels.shape[1]}×{pixels.shape[0]}"
    with sees_col:
        st.image(framed(big), width=VIEW, caption=f"what the network sees: {side} pixels"
                 + (", 17 grey levels" if style == "digits" else ""))
        st.image(framed(np.asarray(overlay(big, reading.explanation.map, alpha=0.5))), width=VIEW,
                 caption=f"{BY_NAME[method].display}: red = pushed towards "
                         f"'{reading.guesses[0]['class']}'")
    with answer_col:
        top = reading.guesses[0]
        st.markdown(f"## It says **{top['class']}** · {top['prob']:.0%}")
        st.altair_chart(bars.top_bars(reading.guesses, height_per_bar=40, label_size=18), width="stretch")
        st.caption(f"read in {reading.seconds * 1000:.0f} ms by {run.model} · run {run.id[-4:]}")


board()
