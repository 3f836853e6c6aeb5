"""What reaches a teacher's screen: no "None"/"nan" in tables, readable chart axes, and no server path
(runs folder, uploads folder, temporary folder, the Python installation) in any page or error message
(issue 18, items 6 and 7)."""

import json
import shutil
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest
from helpers import recorded_run
from streamlit.testing.v1 import AppTest

from cvdemo import runs, uploads
from cvdemo.compare import result_rows
from cvdemo.lesson_results import lesson_rows
from cvdemo.public_names import public_text
from cvdemo.run_list import run_rows

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pages.ui import charts, state, widgets  # noqa: E402


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)


def shown(at: AppTest) -> str:
    """Every element of the page as its protobuf text: labels, options, values, table bytes, messages."""
    out: list[str] = []

    def walk(node) -> None:
        if getattr(node, "proto", None) is not None:
            out.append(str(node.proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def assert_no_server_path(at: AppTest) -> None:
    text = shown(at)
    root = runs.default_root()
    for folder in (str(root), str(root.resolve()), str(root / uploads.UPLOADS), sysconfig.get_paths()["purelib"]):
        assert folder not in text, [line for line in text.splitlines() if folder in line][:3]


def assert_tables_show_a_dash(at: AppTest) -> None:
    """Every table either has no missing cell or shows one as widgets.MISSING, and no cell holds the
    text "None" or "nan"."""
    assert at.dataframe, "no table drawn"
    for table in at.dataframe:
        frame: pd.DataFrame = table.value
        if frame.isna().any().any():
            assert table.proto.placeholder == widgets.MISSING, frame
        text = frame.astype(str).where(frame.notna(), "")
        assert not text.isin(["None", "nan", "NaN", "<NA>"]).any().any(), frame


# -- 1. missing values --------------------------------------------------------------------------

def test_a_cancelled_run_without_test_metrics_shows_a_dash_in_the_runs_and_home_tables():
    cancelled = recorded_run(runs.default_root(), epochs_planned=20, losses=[2.0, 1.5], name="stopped early")
    assert run_rows(runs.list_runs())[0]["test top-1"] is None   # the core keeps numbers numbers
    at = app().run()
    assert not at.exception, at.exception
    assert_tables_show_a_dash(at)                                 # Home's recent runs
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value["test top-1"].isna().all()       # a gap, not the text "None"
    assert_tables_show_a_dash(at)                                 # the runs table and the comparison table
    rows = lesson_rows([("lr 5", cancelled)])
    assert rows[0]["test top-1"] is None and rows[0]["seconds"] is None


def test_every_table_on_the_pages_passes_the_dash_for_missing_values():
    """Each st.dataframe of the pages is given widgets.MISSING (read from the source, so a table added
    later without it is caught)."""
    calls = 0
    for path in [*(ROOT / "pages").glob("*.py"), *(ROOT / "pages" / "ui").glob("*.py")]:
        source = path.read_text(encoding="utf-8")
        for part in source.split("st.dataframe(")[1:]:
            calls += 1
            assert "placeholder=widgets.MISSING" in part[:800], f"{path.name}: a table without the dash"
    assert calls >= 8


# -- 2. readable axes ---------------------------------------------------------------------------

def frame_of(values_by_metric: dict[str, list[float]]):
    rows = [{"run": "a", "epoch": i + 1, "metric": m, "split": "train", "value": v}
            for m, values in values_by_metric.items() for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def y_axis(metric: str, values: list[float], log: bool = False) -> dict:
    return charts.curve_chart(frame_of({metric: values}), metric, log=log).to_dict()["encoding"]["y"]["axis"]


def test_a_loss_of_hundreds_is_labelled_in_plain_digits_not_exponent_notation():
    # "~g" keeps one significant digit on a linear axis of 100s: 400 reads "4e+2"; ",~r" writes "400"
    assert y_axis("loss", [350.0, 400.0, 120.0])["format"] == ",~r"
    assert y_axis("loss", [350.0, 400.0, 0.5], log=True)["format"] == ",~r"
    assert y_axis("loss", [2.3, 0.4])["format"] == ",~r"
    assert y_axis("top-1 accuracy", [0.3, 0.9])["format"] == "%"


def test_scientific_labels_only_where_plain_digits_would_not_fit():
    huge = y_axis("loss", [7e5, 3e7])
    assert huge["format"] == "~e" and "datum.value == 0" in huge["labelExpr"]
    assert y_axis("learning rate", [1e-4, 3e-4])["format"] == "~e"     # 0.0003 reads better as 3e-4
    assert y_axis("learning rate", [0.1, 0.05])["format"] == ",~r"     # 0.1, not 1e-1
    assert y_axis("learning rate", [5.0, 5.0])["format"] == ",~r"


# -- 3. no server path --------------------------------------------------------------------------

def test_public_text_names_the_users_file_and_the_run_never_the_folder():
    root = runs.default_root()
    stored = uploads.uploads_dir() / "upload-0123456789abcdef.zip"
    uploads.remember_name(stored, "scenes.zip")
    assert public_text(f"zip {stored} does not exist: check the path.") == \
        "zip scenes.zip does not exist: check the path."
    assert public_text(f"[Errno 2] No such file or directory: '{stored}'").endswith("'scenes.zip'")
    run = root / "20260101-120000-lenet-digits-ab12"
    assert public_text(f"checkpoint {run / 'best.pt'} does not exist") == \
        "checkpoint best.pt of run 20260101-120000-lenet-digits-ab12 does not exist"
    assert public_text(f"cannot create the runs folder {root}: Permission denied") == \
        "cannot create the runs folder: Permission denied"
    site = sysconfig.get_paths()["purelib"]
    assert public_text(f"{site}/torch/serialization.py failed") == "serialization.py failed"
    assert public_text("see `cvdemo runs`, runs/ids and /tmpfoo/x") == "see `cvdemo runs`, runs/ids and /tmpfoo/x"


def test_a_bad_upload_names_the_users_file():
    at = app().run()
    at.switch_page("pages/data.py").run()
    at.radio(key=state.KEY_DATA_KIND).set_value("zip").run()
    at.file_uploader(key=state.KEY_DATA_ZIP).set_value(("scenes.zip", b"not a zip at all", "application/zip")).run()
    assert not at.exception, at.exception
    assert any("scenes.zip" in e.value for e in at.error), [e.value for e in at.error]
    assert_no_server_path(at)


@pytest.fixture
def damaged_run(digits_run):
    """The shared digits run with both its checkpoints overwritten by junk."""
    target = runs.default_root() / digits_run.name
    shutil.copytree(digits_run, target)
    for name in ("best.pt", "last.pt"):
        (target / name).write_bytes(b"not a checkpoint" * 64)
    return target


@pytest.mark.parametrize("page", ["pages/evaluate.py", "pages/classify.py", "pages/explain.py",
                                  "pages/embeddings.py", "pages/draw.py", "pages/compare.py", "pages/train.py"])
def test_a_damaged_checkpoint_is_reported_without_a_server_path(damaged_run, page):
    at = app().run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert_no_server_path(at)


def test_a_failed_run_whose_upload_is_gone_names_the_upload_on_the_train_page():
    """A run trained on an uploaded zip that is no longer there (a missing data folder on resume): the
    run's message says the zip's own name, not where the server kept it."""
    from cvdemo.config import RunConfig
    from cvdemo.errors import CvdemoError
    from cvdemo.train.job import run_training

    stored = uploads.uploads_dir() / "upload-0123456789abcdef.zip"
    uploads.remember_name(stored, "scenes.zip")
    config = RunConfig().replace(data={"source": str(stored)}, train={"epochs": 1})
    run_dir = runs.create_run(runs.default_root(), config)
    with pytest.raises(CvdemoError):
        run_training(config, run_dir)
    status = runs.read_status(run_dir)
    assert status["state"] == "failed"
    at = app()
    at.session_state[state.KEY_WATCH_RUN] = run_dir.name
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("scenes.zip" in e for e in errors), errors
    assert_no_server_path(at)
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    assert_no_server_path(at)
    at.switch_page("pages/home.py").run()
    assert_no_server_path(at)


def test_the_runs_comparison_names_an_upload_by_its_own_name():
    stored = uploads.uploads_dir() / "upload-fedcba9876543210.zip"
    uploads.remember_name(stored, "holiday photos.zip")
    run_dir = recorded_run(runs.default_root(), epochs_planned=3, losses=[1.0], state="completed")
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["source"] = str(stored)
    (run_dir / "config.json").write_text(json.dumps(config))
    (row,) = result_rows(runs.list_runs())
    assert row["data"] == "holiday photos.zip"
