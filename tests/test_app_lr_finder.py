"""Issue 18, item 3 under AppTest: the Train page's LR finder runs in the background on the form's
settings, draws loss against learning rate on a log axis with the suggestion marked, and "Use this rate"
puts the suggestion in the form."""

import json
import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `pages` is a package beside streamlit_app.py

from pages.ui import state  # noqa: E402


def on_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=90).run()
    return at.switch_page(page).run()


def test_find_a_learning_rate_then_use_it():
    at = on_page("pages/train.py")
    at.number_input(key=state.form_key("data", "limit_train")).set_value(64)
    at.number_input(key=state.form_key("train", "batch_size")).set_value(8)
    at.selectbox(key=state.form_key("train", "optimizer")).set_value("sgd")
    at.button(key=state.KEY_LR_FIND_START).click().run()
    assert not at.exception, at.exception
    task = at.session_state[state.KEY_LR_FIND]
    assert task.about.data.limit_train == 64 and task.about.train.optimizer == "sgd"  # the form's settings
    assert any("Finding a learning rate" in i.value for i in at.info) or task.done   # the page did not wait
    assert task.wait(120), "the LR finder did not finish in 2 minutes"
    assert task.error is None, task.error
    at.run()
    assert not at.exception, at.exception

    (chart,) = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")
                if "learning rate (log scale)" in c.proto.spec]
    line, rule, point, label = chart["layer"]
    assert line["encoding"]["x"]["scale"]["type"] == "log" and rule["mark"]["type"] == "rule"
    suggested = task.result.suggested_lr
    rate = float(f"{suggested:.2g}")
    use = at.button(key=state.KEY_LR_USE)
    assert use.label == f"Use this rate ({rate:g})"
    use.click().run()
    assert not at.exception, at.exception
    assert at.number_input(key=state.form_key("train", "lr")).value == rate
    assert at.number_input(key=state.form_key("data", "limit_train")).value == 64  # the rest as it was
    assert at.session_state[state.KEY_DRAFT]["train"]["lr"] == rate


def test_the_finder_refuses_bad_settings_like_start_does():
    at = on_page("pages/train.py")
    at.number_input(key=state.form_key("train", "batch_size")).set_value(0)
    at.button(key=state.KEY_LR_FIND_START).click().run()
    assert not at.exception, at.exception
    assert any("Cannot find a learning rate" in e.value for e in at.error)
    assert state.KEY_LR_FIND not in at.session_state
