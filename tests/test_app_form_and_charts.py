"""Issue 18, items 4, 7 and 9 under AppTest and on the chart helpers: a bad Train form lists every bad
field with its range instead of doing nothing; the Runs page's overlaid loss is readable (log scale by
default, a colour-blind-safe colour per run, axes that fit what was recorded); the gallery's tiles
stand apart; the Train page draws before it loads torch."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import recorded_run
from streamlit.testing.v1 import AppTest

from cvdemo import runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `pages` is a package beside streamlit_app.py

from pages.ui import charts, state  # noqa: E402


def on_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=90).run()
    return at.switch_page(page).run()


def specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def layer_encoding(spec: dict) -> dict:
    """The encoding of a curve chart (a line layered with its points, or a plain line)."""
    return (spec["layer"][0] if "layer" in spec else spec)["encoding"]


@pytest.fixture
def finished_run(digits_run):
    target = runs.default_root() / digits_run.name
    shutil.copytree(digits_run, target)
    return target


# -- item 4: no silent no-ops on the Train form ---------------------------------------------------

@pytest.mark.parametrize("values, expected", [
    ({"epochs": -5, "batch_size": 0, "lr": -1.0},
     ["**epochs** must be at least 1, got -5 — allowed: 1 to 10,000",
      "**batch size** must be at least 1, got 0 — allowed: 1 to 65,536",
      "**lr** must be greater than 0.0, got -1.0 — allowed: above 0 up to 1,000,000"]),
    ({"batch_size": 100_000}, ["**batch size** must be at most 65536, got 100000 — allowed: 1 to 65,536"]),
])
def test_start_with_bad_values_lists_every_bad_field_with_its_range_and_starts_nothing(values, expected):
    at = on_page("pages/train.py")
    for name, value in values.items():
        at.number_input(key=state.form_key("train", name)).set_value(value)
    at.button(key=state.KEY_TRAIN_START).click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1, [e.value for e in at.error]        # one message, not one per field
    message = at.error[0].value
    assert message.startswith("Cannot start training until")
    for line in expected:
        assert line in message, message
    assert runs.list_runs() == []


def test_start_with_a_mistake_found_before_the_run_leaves_no_failed_run_behind():
    at = on_page("pages/train.py")
    at.number_input(key=state.form_key("data", "image_size")).set_value(8)  # LeNet's layers shrink 8 px to nothing
    at.button(key=state.KEY_TRAIN_START).click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "8" in at.error[0].value, [e.value for e in at.error]
    assert runs.list_runs() == []


def test_projector_mode_from_the_url_puts_the_curves_first_with_larger_type(finished_run):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=90)
    assert not any("font-size: 20px" in h.proto.body for h in at.run().get("html"))  # off by default
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=90)
    at.query_params["projector"] = "1"
    at.run()
    assert not at.exception, at.exception
    assert at.toggle(key="projector").value is True
    assert any("font-size: 20px" in h.proto.body for h in at.get("html"))
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    assert at.expander[0].label == "Settings for a new run"        # the form is folded away under the curves
    assert at.selectbox(key=state.KEY_WATCH_RUN).value == finished_run.name
    assert len(specs(at)) >= 2                                      # loss and accuracy, side by side


def test_update_the_link_with_bad_values_lists_them_too():
    at = on_page("pages/train.py")
    at.number_input(key=state.form_key("train", "epochs")).set_value(0)
    at.text_input(key=state.form_key("train", "milestones")).set_value("3, x")
    at.button(key=state.KEY_TRAIN_SHARE).click().run()
    assert not at.exception
    assert len(at.error) == 1 and "Cannot update the link until these 2 are fixed" in at.error[0].value
    assert "**milestones** must be a comma-separated list of whole numbers" in at.error[0].value


def test_number_fields_take_any_number_and_say_their_range_in_the_tooltip():
    """Bounds on the widget made the browser refuse -5 with only a tooltip: the range is in the help now,
    and the check is the core's."""
    at = on_page("pages/train.py")
    epochs = at.number_input(key=state.form_key("train", "epochs"))
    assert epochs.min is None and epochs.max is None
    assert "allowed: 1 to 10,000" in epochs.help


def test_train_page_draws_its_title_before_it_loads_torch(tmp_path):
    """The page was blank for seconds after navigation: torch was imported before the first st call."""
    script = textwrap.dedent("""
        import sys
        import streamlit as st
        from streamlit.testing.v1 import AppTest
        seen, real = [], st.title
        def title(body, *args, **kwargs):
            seen.append((body, "torch" in sys.modules))
            return real(body, *args, **kwargs)
        st.title = title
        at = AppTest.from_file("streamlit_app.py", default_timeout=120).run()
        at.switch_page("pages/train.py").run()
        assert not at.exception, at.exception
        print(seen, "torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CVDEMO_RUNS": str(tmp_path / "runs")})
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout.strip().splitlines()[-1]
    assert out.endswith("True"), out                    # the page did load torch, after its title
    assert "('Train', False)" in out, out


# -- item 7: the Runs page's overlaid loss stays readable -------------------------------------------

def test_runs_loss_is_log_scale_by_default_with_one_colour_blind_safe_colour_per_run(finished_run):
    bad = recorded_run(runs.default_root(), epochs_planned=200, losses=[300, 350, 420, 380, 360, 400, 390],
                       name="sgd lr 5")
    at = on_page("pages/compare.py")
    at.multiselect(key=state.KEY_COMPARE).set_value([finished_run.name, bad.name]).run()
    assert not at.exception, at.exception
    assert at.toggle(key=state.KEY_COMPARE_LOG).value is True
    accuracy, loss = specs(at)[:2]
    assert layer_encoding(loss)["y"]["scale"]["type"] == "log"
    assert layer_encoding(accuracy)["y"]["scale"].get("type") != "log"
    for spec in (accuracy, loss):
        colour = layer_encoding(spec)["color"]["scale"]
        assert len(colour["domain"]) == 2 and colour["range"] == list(charts.RUN_COLOURS[:2])
        x_scale = layer_encoding(spec)["x"]["scale"]
        assert "domain" not in x_scale and x_scale["domainMin"] == 0    # ends where the data ends
    assert layer_encoding(accuracy)["color"]["scale"]["domain"] == layer_encoding(loss)["color"]["scale"]["domain"]

    at.toggle(key=state.KEY_COMPARE_LOG).set_value(False).run()
    assert not at.exception
    assert layer_encoding(specs(at)[1])["y"]["scale"].get("type") != "log"


def test_runs_page_pickers_name_the_settings_that_set_unnamed_runs_apart():
    """Issue 18 item 6: two unnamed runs of the same model on the same data read "... · epochs 3" and
    "... · epochs 200" in both pickers of the Runs page, not only a start time and a hash."""
    short = recorded_run(runs.default_root(), epochs_planned=3, losses=[1.0, 0.8])
    long = recorded_run(runs.default_root(), epochs_planned=200, losses=[1.0, 0.9])
    at = on_page("pages/compare.py")
    assert not at.exception, at.exception
    for options in (at.multiselect(key=state.KEY_COMPARE).options, at.selectbox(key=state.KEY_SELECTED_RUN).options):
        by_epochs = sorted(o for o in options if "epochs" in o)
        assert len(by_epochs) == 2 and any("epochs 3" in o for o in by_epochs) \
            and any("epochs 200" in o for o in by_epochs), options
    assert short.name != long.name


def test_train_page_axis_fits_a_cancelled_run_and_spans_the_plan_while_running():
    cancelled = recorded_run(runs.default_root(), epochs_planned=200, losses=[2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7])
    at = on_page("pages/train.py")
    assert not at.exception, at.exception
    found = specs(at)
    assert len(found) == 3
    for spec in found:
        assert layer_encoding(spec)["x"]["scale"].get("domain") is None   # 7 epochs fill the width

    runs.write_status(cancelled, "running", "epoch 8")   # still going: the axis shows the whole plan
    at = on_page("pages/train.py")
    assert layer_encoding(specs(at)[0])["x"]["scale"]["domain"] == [0, 200]


def frame_of(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"run": run, "epoch": e + 1, "metric": "loss", "split": "train", "value": v}
            for run, vs in values.items() for e, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_curve_chart_log_scale_leaves_out_values_a_log_axis_cannot_draw():
    spec = charts.curve_chart(frame_of({"a": [1.0, 0.0, 0.5], "b": [300.0, 350.0]}), "loss", by_run=True,
                              log=True).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert sorted(v["value"] for v in values) == [0.5, 1.0, 300.0, 350.0]
    assert spec["encoding"]["y"]["axis"]["title"] == "loss (log scale)"


def test_curve_chart_colours_follow_the_run_order_and_cycle_past_eight_runs():
    names = [f"run {i}" for i in range(10)]
    spec = charts.curve_chart(frame_of({n: [1.0, 0.5] for n in names}), "loss", by_run=True).to_dict()
    scale = spec["encoding"]["color"]["scale"]
    assert scale["domain"] == names
    assert scale["range"] == [*charts.RUN_COLOURS, *charts.RUN_COLOURS[:2]]
    assert len(set(charts.RUN_COLOURS)) == 8


def test_one_runs_legend_names_only_the_splits_it_draws_in_fixed_colours():
    frame = pd.concat([frame_of({"r": [0.1, 0.05]}).assign(metric="learning rate"),
                       frame_of({"r": [2.0, 1.0]}), frame_of({"r": [2.2, 1.4]}).assign(split="validation")])
    lr = charts.curve_chart(frame, "learning rate").to_dict()["encoding"]["color"]["scale"]
    loss = charts.curve_chart(frame, "loss").to_dict()["encoding"]["color"]["scale"]
    assert lr == {"domain": ["train"], "range": [charts.RUN_COLOURS[0]]}
    assert loss == {"domain": ["train", "validation"], "range": list(charts.RUN_COLOURS[:2])}


# -- item 9: gallery tiles stand apart ---------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (3, 300, 200), (1, 30, 70)])
def test_gallery_tiles_are_square_with_a_white_margin_and_an_outline(shape):
    image = np.zeros(shape, dtype=np.uint8)                       # all black: the worst case for merging
    tile = charts.framed(image, 64)
    assert tile.shape[:2] == (64, 64) and (tile.ndim == 2) == (shape[0] == 1)
    grey = tile if tile.ndim == 2 else tile[..., 0]
    assert (grey[:, :3] == 255).all() and (grey[:, -3:] == 255).all()   # neighbours never touch
    assert (grey[:3] == 255).all() and (grey[-3:] == 255).all()
    assert (grey == 190).any() and (grey == 0).sum() > 0.3 * 64 * 64     # outline, and the picture is big


def test_gallery_keeps_eight_pixel_digits_sharp():
    digit = np.random.default_rng(0).integers(0, 256, (1, 8, 8), dtype=np.uint8)
    tile = charts.framed(digit, 64)
    inside = tile[tile != 255]
    assert set(np.unique(inside)) <= set(np.unique(digit)) | {190}       # whole-pixel copies, no blur


def test_train_page_draws_each_layer_groups_dynamics_as_lines_under_the_heat_map(finished_run):
    at = on_page("pages/train.py")
    at.selectbox(key=state.KEY_WATCH_RUN).set_value(finished_run.name).run()
    before = len(specs(at))
    at.toggle(key=state.KEY_TRAIN_GRADIENTS).set_value(True).run()
    assert not at.exception, at.exception
    drawn = specs(at)[before:]
    assert len(drawn) == 2                                      # the heat map and the lines
    lines = drawn[1]
    assert lines["encoding"]["y"]["field"] == "update_ratio" and lines["encoding"]["y"]["scale"]["type"] == "log"
    records = [m for m in runs.read_metrics(finished_run) if m.get("kind") == "dynamics"]
    groups = list(records[0]["groups"])
    assert groups == ["conv1", "conv2", "fc", "head"] and lines["encoding"]["color"]["sort"] == groups
    at.segmented_control(key=state.KEY_TRAIN_DYNAMICS).set_value("grad_norm").run()
    assert specs(at)[before + 1]["encoding"]["y"]["field"] == "grad_norm"
