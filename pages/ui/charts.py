"""Drawing for the pages: training curves (Altair), image tiles and galleries, filter and feature-map
pictures, and reading back what a user selected on a chart. numpy, pandas, altair and matplotlib are
imported inside the functions that need them, so the Home page starts without them."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages.ui.cached import split_images

# -- images --------------------------------------------------------------------------------------

def tile(images: Any, columns: int | None = None, min_side: int = 72, gap: int = 6) -> Any:
    """uint8 (N, C, H, W) -> one image with the N images in a grid (`columns` wide; default one row) on
    white, tiny images enlarged by pixel repetition (nearest) so 8x8 digits stay sharp on a projector.
    Returns (H', W') for grey and (H', W', 3) for colour images."""
    import numpy as np

    images = np.asarray(images)
    n, c, h, w = images.shape
    columns = max(1, min(columns or n, n))
    rows = -(-n // columns)
    k = max(1, -(-min_side // max(h, w)))
    big = images.repeat(k, axis=2).repeat(k, axis=3)
    hk, wk = h * k, w * k
    canvas = np.full((c, rows * (hk + gap) - gap, columns * (wk + gap) - gap), 255, dtype=np.uint8)
    for i in range(n):
        y, x = divmod(i, columns)
        canvas[:, y * (hk + gap): y * (hk + gap) + hk, x * (wk + gap): x * (wk + gap) + wk] = big[i]
    return canvas[0] if c == 1 else canvas.transpose(1, 2, 0)


def enlarge(image: Any, side: int) -> Any:
    """uint8 (C, H, W) -> (H', W') grey or (H', W', 3) colour, pixels repeated (nearest) until the long
    side reaches about `side`: 8x8 digits stay crisp squares instead of a blur."""
    import numpy as np

    image = np.asarray(image)
    k = max(1, round(side / max(image.shape[1:])))
    big = image.repeat(k, axis=1).repeat(k, axis=2)
    return big[0] if big.shape[0] == 1 else big[:3].transpose(1, 2, 0)


@st.cache_data(max_entries=16, show_spinner=False)
def thumbnails(run_dir: str, split: str, indices: tuple[int, ...], side: int = 72) -> list[str]:
    """Small PNG data URLs of some samples of a split, for chart tooltips (a field named "image")."""
    import base64
    import io

    from PIL import Image

    urls = []
    for image in split_images(run_dir, split, indices):
        buf = io.BytesIO()
        pic = Image.fromarray(enlarge(image, side))
        if max(pic.size) > side:
            pic.thumbnail((side, side))
        pic.save(buf, format="PNG", optimize=True)
        urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return urls


def framed(image: Any, width: int, margin: int = 4) -> Any:
    """uint8 (C, H, W) -> a `width` x `width` tile: the image enlarged (nearest) or shrunk to fit inside a
    thin grey outline, centred on a white margin. Streamlit lays a list of images edge to edge: without
    the margin, dark 8x8 digits merge into one band and read as overlapping, cut-off pictures.
    Returns (width, width) for grey and (width, width, 3) for colour images."""
    import numpy as np
    from PIL import Image

    inner = max(1, width - 2 * margin - 2)
    image = np.asarray(image)
    k = max(1, inner // max(image.shape[1:]))        # whole pixels only: 8x8 digits stay crisp squares
    big = image.repeat(k, axis=1).repeat(k, axis=2)
    big = big[0] if big.shape[0] == 1 else big[:3].transpose(1, 2, 0)
    side = max(big.shape[:2])
    if side > inner or side < 0.75 * inner:                  # too big, or small but not a whole multiple
        scale = inner / side
        size = (max(1, round(big.shape[1] * scale)), max(1, round(big.shape[0] * scale)))
        big = np.asarray(Image.fromarray(big).resize(size, Image.NEAREST if scale > 1 else Image.BILINEAR))
    h, w = big.shape[:2]
    canvas = np.full((width, width, *big.shape[2:]), 255, dtype=np.uint8)
    top, left = (width - h) // 2, (width - w) // 2
    canvas[top - 1: top + h + 1, left - 1: left + w + 1] = 190   # the outline
    canvas[top: top + h, left: left + w] = big
    return canvas


def gallery(images: Any, captions: list[str], width: int = 96) -> None:
    """uint8 (N, C, H, W) images in wrapping rows, each on its own framed tile with a caption under it;
    small ones enlarged (nearest)."""
    if len(images):
        st.image([framed(im, width) for im in images], caption=captions, width=width)


def filters_picture(weights: Any, side: int = 40) -> Any:
    """First-layer filters float (O, I, kh, kw) -> one image: each filter on its own scale, in colour
    when it reads RGB, grey otherwise."""
    import numpy as np

    from cvdemo.filters import filters_for_display

    pics = (filters_for_display(weights) * 255 + 0.5).astype(np.uint8)
    return tile(pics, columns=int(np.ceil(np.sqrt(len(pics)))), min_side=side, gap=4)


def feature_maps_picture(maps: Any, limit: int = 64, side: int = 56) -> Any:
    """Activations float (C, h, w) -> one viridis image of the first `limit` channels, each scaled to its
    own 1st-99th percentile (dark = low, bright = high)."""
    import numpy as np
    from matplotlib import colormaps

    from cvdemo.filters import maps_for_display

    unit = maps_for_display(maps, limit)
    rgb = (colormaps["viridis"](unit)[..., :3] * 255 + 0.5).astype(np.uint8)  # (C, h, w, 3)
    return tile(rgb.transpose(0, 3, 1, 2), columns=int(np.ceil(np.sqrt(len(unit)))), min_side=side, gap=4)


# -- training curves -----------------------------------------------------------------------------

# Okabe & Ito's palette, safe for every common colour-vision deficiency, darkest first; its yellow comes
# last because it is faint on white. One colour per run (or per split when one run is drawn).
RUN_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")


def curves_frame(metrics_by_run: dict[str, list[dict]]) -> Any:
    """Long table (run, epoch, metric, split, value) of some runs' metric records. Training loss and
    learning rate come from the step records (several points per epoch) when the run has them;
    `epoch` is fractional there (1.0 = the end of the first epoch, where its epoch record sits)."""
    import pandas as pd

    rows = []
    for run, records in metrics_by_run.items():
        has_steps = any(m.get("kind") == "step" for m in records)
        for m in records:
            if m.get("kind") == "step":
                pairs = (("loss", "loss", "train"), ("lr", "learning rate", "train"))
            elif m.get("kind") == "epoch":
                pairs = (("val_loss", "loss", "validation"), ("train_top1", "top-1 accuracy", "train"),
                         ("val_top1", "top-1 accuracy", "validation"))
                if not has_steps:
                    pairs += (("train_loss", "loss", "train"), ("lr", "learning rate", "train"))
            else:
                continue
            for key, metric, split in pairs:
                if m.get(key) is not None:
                    rows.append({"run": run, "epoch": m["epoch"], "metric": metric, "split": split,
                                 "value": m[key]})
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "split", "value"])


def value_axis_format(metric: str, values: Any) -> dict[str, str]:
    """The value axis' number format (d3-format) for a curve: accuracy in percent; a loss or learning rate
    in plain decimals ("400", "0.05", "1,200": Vega's "~g" would write 400 as "4e+2" on a linear axis,
    where it keeps one significant digit); scientific only where plain digits would not fit (a loss past
    a million, a learning rate below 0.001), with 0 written as "0"."""
    if "accuracy" in metric:
        return {"format": "%"}
    top = float(abs(values).max()) if len(values) else 0.0
    if top >= 1e6 or (metric == "learning rate" and 0 < top < 1e-3):
        return {"format": "~e", "labelExpr": "datum.value == 0 ? '0' : datum.label"}
    return {"format": ",~r"}


def curve_chart(frame: Any, metric: str, *, epochs: int | None = None, by_run: bool = False,
                height: int = 260, log: bool = False, names: list[str] | None = None) -> Any:
    """An Altair line chart of one metric against epoch: train/validation as colours (one run) or
    runs as colours and splits as dashes (several runs). Legends sit on the right: Streamlit's theme
    pads a title or a top legend generously, out of the plot's `height`.

    `epochs`: the planned length, for a run still training (its curve grows across the axis); without
    it the axis ends at the last point recorded, so a run cancelled at 7 of 200 epochs fills the width.
    `log`: a logarithmic value axis, so a run whose loss stayed at 300 does not flatten a good one at 0.
    Colours come from `RUN_COLOURS` in the order the runs appear in `frame`: the same run has the same
    colour in every chart drawn from one frame. `names`: every run to list in the legend, in colour order,
    also those with nothing recorded yet (a lesson's queued arm keeps its colour from the start)."""
    import altair as alt

    data = frame[frame["metric"] == metric]
    if log:
        data = data[data["value"] > 0]  # a log axis has no place for 0
    y_axis = alt.Axis(title=f"{metric} (log scale)" if log else metric, **value_axis_format(metric, data["value"]))
    y_scale = alt.Scale(type="log") if log else alt.Scale(zero=metric == "learning rate")
    x_scale = alt.Scale(domain=[0, epochs]) if epochs else alt.Scale(domainMin=0, nice=False)
    if by_run:
        names = names or list(dict.fromkeys(frame["run"]))
        colours = alt.Scale(domain=names, range=[RUN_COLOURS[i % len(RUN_COLOURS)] for i in range(len(names))])
    else:  # the legend names only the splits drawn (the learning rate has no validation line), colours fixed
        splits = ("train", "validation")
        drawn = [s for s in splits if s in set(data["split"])] or list(splits)
        colours = alt.Scale(domain=drawn, range=[RUN_COLOURS[splits.index(s)] for s in drawn])
    # whole epochs on the axis, unless all that was recorded is part of the first (a run that blew up early)
    short = not epochs and len(data) and data["epoch"].max() < 1
    x_axis = alt.Axis(format=".2~f") if short else alt.Axis(tickMinStep=1, format="d")
    base = alt.Chart(data, height=height).encode(
        x=alt.X("epoch:Q", title="epoch", scale=x_scale, axis=x_axis),
        y=alt.Y("value:Q", scale=y_scale, axis=y_axis),
        color=alt.Color("run:N" if by_run else "split:N", title=None, scale=colours,
                        legend=alt.Legend(orient="right", labelLimit=220)),
        tooltip=["run", "epoch", "split", alt.Tooltip("value:Q", format=".4g")])
    if by_run:
        base = base.encode(strokeDash=alt.StrokeDash("split:N", title=None, legend=alt.Legend(orient="right")))
    few = data.groupby(["run", "split"])["epoch"].count().max() <= 30 if len(data) else True
    return base.mark_line(point=alt.OverlayMarkDef(size=60) if few else False, strokeWidth=3)


def draw_curve(frame: Any, metric: str, **options: Any) -> None:
    """A bold heading and the chart of one metric (see curve_chart)."""
    st.markdown(f"**{metric.capitalize()}**")
    st.altair_chart(curve_chart(frame, metric, **options), width="stretch")


def dynamics_frame(records: list[dict]) -> Any:
    """Long table (step, epoch, group, order, grad_norm, weight_norm, update_ratio, dead_relu) of a run's
    "dynamics" records (cvdemo.train.dynamics): one row per layer group per recorded step; `order` 0 is the stem."""
    import pandas as pd

    rows = [{"step": m["step"], "epoch": m.get("epoch"), "group": name, "order": i, **values}
            for m in records if m.get("kind") == "dynamics"
            for i, (name, values) in enumerate((m.get("groups") or {}).items())]
    return pd.DataFrame(rows, columns=["step", "epoch", "group", "order", "grad_norm", "weight_norm", "update_ratio",
                                       "dead_relu"])


def gradient_heatmap(frame: Any, value: str = "grad_norm", height: int = 220,
                     domain: tuple[float, float] | None = None) -> Any:
    """Layer groups (stem at the top) x recorded steps, coloured by `value` on a log scale: a column that
    fades towards the top is a gradient vanishing on its way back to the first layers. `domain`: the
    (lowest, highest) value the colours span, the same for heat maps drawn side by side."""
    import altair as alt

    data = frame[frame[value].notna() & (frame[value] > 0)]
    scale = alt.Scale(type="log", scheme="viridis", **({"domain": list(domain)} if domain else {}))
    titles = {"grad_norm": "gradient norm", "weight_norm": "weight norm", "update_ratio": "update / weight"}
    order = list(dict.fromkeys(frame.sort_values("order")["group"]))
    return alt.Chart(data, height=height).mark_rect().encode(
        x=alt.X("step:O", title="optimisation step", axis=alt.Axis(labelAngle=0, labelOverlap=True)),
        y=alt.Y("group:N", sort=order, title=None),
        color=alt.Color(f"{value}:Q", title=titles[value], scale=scale,
                        legend=alt.Legend(orient="right", format=".1~e")),
        tooltip=["group", "step", alt.Tooltip(f"{value}:Q", format=".3g")])


def lr_finder_chart(lrs: list[float], losses: list[float], suggested: float, height: int = 300) -> Any:
    """The LR finder's sweep: smoothed training loss against learning rate on a log axis, with the
    suggested rate (steepest descent of the loss) marked by a vertical rule, a point and its value."""
    import altair as alt
    import pandas as pd

    sweep = pd.DataFrame({"learning rate": lrs, "loss": losses})
    near = min(range(len(lrs)), key=lambda i: abs(lrs[i] - suggested))  # the sweep point the suggestion is
    mark = pd.DataFrame({"learning rate": [suggested], "loss": [losses[near]], "top": [max(losses)],
                         "label": [f"suggested: {suggested:.2g}"]})
    x = alt.X("learning rate:Q", scale=alt.Scale(type="log"), axis=alt.Axis(format="~g", title="learning rate (log scale)"))
    y = alt.Y("loss:Q", scale=alt.Scale(zero=False), axis=alt.Axis(title="training loss (smoothed)"))
    line = alt.Chart(sweep, height=height).mark_line(strokeWidth=3, color=RUN_COLOURS[0]).encode(
        x=x, y=y, tooltip=[alt.Tooltip("learning rate:Q", format=".3g"), alt.Tooltip("loss:Q", format=".3g")])
    rule = alt.Chart(mark).mark_rule(color=RUN_COLOURS[3], strokeWidth=2, strokeDash=[6, 4]).encode(x=x)
    point = alt.Chart(mark).mark_point(size=160, filled=True, color=RUN_COLOURS[3]).encode(x=x, y=y)
    # the label at the top, left of the rule: the loss is flat there, while to the right it shoots up
    label = alt.Chart(mark).mark_text(align="right", baseline="top", dx=-8, fontSize=15, fontWeight="bold",
                                      color=RUN_COLOURS[3]).encode(x=x, y=alt.Y("top:Q"), text="label:N")
    return alt.layer(line, rule, point, label)


# -- selections ----------------------------------------------------------------------------------

def selected(event: Any, name: str) -> Any:
    """What a chart's selection `name` holds: a list of points (point selection), {field: [lo, hi]}
    (interval) or None when nothing is selected."""
    try:
        value = event["selection"][name]
    except (KeyError, TypeError):
        return None
    return value or None


DYNAMICS_TITLES = {"grad_norm": "gradient norm", "weight_norm": "weight norm", "update_ratio": "update / weight",
                   "dead_relu": "dead ReLU units"}


def dynamics_values(frame: Any) -> list[str]:
    """The DYNAMICS_TITLES values `frame` has any figure of (a network without ReLU has no dead-ReLU share)."""
    return [v for v in DYNAMICS_TITLES if v in frame and frame[v].notna().any()]


def dynamics_lines(frame: Any, value: str, height: int = 220) -> Any:
    """One line per layer group (stem to head, coloured in that order) of `value` against the step, on a
    log axis: how the gradients, the weights or the size of each step relative to the weights move. The
    dead-ReLU share is a fraction (0 is a value, not a gap): a linear axis from 0 to 100%."""
    import altair as alt

    share = value == "dead_relu"
    data = frame[frame[value].notna() & ((frame[value] >= 0) if share else (frame[value] > 0))]
    order = list(dict.fromkeys(frame.sort_values("order")["group"]))
    return alt.Chart(data, height=height).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("step:Q", title="optimisation step"),
        y=alt.Y(f"{value}:Q", title=DYNAMICS_TITLES[value],
                scale=alt.Scale(domain=[0, 1]) if share else alt.Scale(type="log"),
                axis=alt.Axis(format="%") if share else alt.Axis(format="~g")),
        color=alt.Color("group:N", sort=order, title="layer group", scale=alt.Scale(scheme="viridis"),
                        legend=alt.Legend(orient="right")),
        tooltip=["group", "step", alt.Tooltip(f"{value}:Q", format=".3g")])
