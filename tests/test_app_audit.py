"""The Data page's "Check this data" section under Streamlit's AppTest, on a folder with planted problems."""

import sys
from pathlib import Path

import pytest
from audit_data import planted_folder
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `pages` is a package beside streamlit_app.py

from pages.ui import audit_view, state  # noqa: E402


def data_page_on(folder: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    at = at.switch_page("pages/data.py").run()
    at.radio(key=state.KEY_DATA_KIND).set_value("folder").run()
    at.text_input(key=state.KEY_DATA_FOLDER).set_value(folder).run()
    return at


@pytest.mark.slow
def test_check_this_data_shows_counts_galleries_and_the_csv(tmp_path):
    planted = planted_folder(tmp_path)
    at = data_page_on(str(planted.root))
    assert not at.exception and not at.error
    assert not at.tabs  # nothing is checked before the button is pressed
    at.button(key=state.KEY_AUDIT_RUN).click().run(timeout=300)
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["exact duplicates"] == "1" and metrics["near duplicates"] == "1"
    assert metrics["unreadable files"] == "1" and metrics["tiny images"] == "1"
    assert any("The test accuracy of a model trained on this data will look better" in w.value for w in at.warning)
    labels = [t.label for t in at.tabs]
    assert labels[0] == "exact duplicates (1)" and "likely wrong labels" in " ".join(labels)
    markdown = " ".join(m.value for m in at.markdown)
    assert "labelled differently (discs, squares)" in markdown
    assert at.get("download_button") and at.session_state[state.KEY_AUDIT_FOR][0] == str(planted.root)
    at.toggle(key=state.KEY_AUDIT_ORDER).set_value(True).run(timeout=120)  # reorders the kept report
    assert not at.exception
    assert at.session_state[state.KEY_DRAFT]["data"]["exclude"] == []  # nothing left out until asked
    at.toggle(key=state.KEY_AUDIT_EXCLUDE).set_value(True).run(timeout=120)
    assert not at.exception
    left_out = at.session_state[state.KEY_DRAFT]["data"]["exclude"]
    assert left_out == sorted(["test/squares/twin.png", planted.near[1], planted.blank, planted.tiny])
    from cvdemo.config import RunConfig

    assert RunConfig.from_dict(at.session_state[state.KEY_DRAFT]).data.exclude == tuple(left_out)
    assert (planted.root / "test/squares/twin.png").exists()


def test_a_missing_folder_keeps_its_one_sentence_error_and_no_check_button():
    at = data_page_on("/no/such/folder")
    assert not at.exception and "does not exist" in at.error[0].value
    assert not [b for b in at.button if b.key == state.KEY_AUDIT_RUN]


def test_audit_size_follows_the_images_within_64_to_224():
    assert audit_view.audit_size(8) == 64 and audit_view.audit_size(160) == 160
    assert audit_view.audit_size(None) == 224 and audit_view.audit_size(500) == 224


@pytest.mark.slow
def test_evaluate_says_the_test_number_may_be_optimistic_when_a_check_found_leakage(digits_run):
    import shutil

    import numpy as np

    from cvdemo import runs
    from cvdemo.audit import AuditReport, Item
    from cvdemo.audit.duplicates import group_finding
    from cvdemo.audit.store import remember

    run = runs.default_root() / digits_run.name
    shutil.copytree(digits_run, run)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    at = at.switch_page("pages/evaluate.py").run()
    assert not at.exception and not any("may be optimistic" in w.value for w in at.warning)
    pair = [Item("train", 5, "3", "digits train #5"), Item("test", 9, "3", "digits test #9")]
    report = AuditReport("digits", "efficientnet_lite0", 64, 0.9, [str(i) for i in range(10)], {},
                         split_settings={"seed": 0, "val_fraction": 0.1, "test_fraction": 0.2})
    report.findings = [group_finding("near_duplicate", [0, 1], pair, np.array([3, 3]), 0.95, "alike")]
    remember(report)
    at.run()
    assert not at.exception
    notes = [w.value for w in at.warning if "may be optimistic" in w.value]
    assert len(notes) == 1 and "1 group of duplicate images sit in both" in notes[0]
