"""Shareable settings: config <-> URL query parameters (pure), the Train page reading and writing its URL,
settings files, and the Runs page's report download."""

import json
import shutil
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError
from cvdemo.share import config_from_json, config_from_query, config_json, config_to_query, query_key

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `pages` is a package beside streamlit_app.py

from pages.ui import state  # noqa: E402

# -- the conversion (cvdemo.share) ---------------------------------------------------------------

def test_defaults_make_an_empty_query_and_an_empty_query_the_defaults():
    assert config_to_query(RunConfig()) == {}
    shared = config_from_query({})
    assert shared.config == RunConfig() and shared.message() is None


def test_a_config_survives_the_round_trip_through_a_link():
    config = RunConfig().replace(model={"name": "resnet18", "pretrained": True, "freeze": "until:layer3"},
                                 data={"image_size": 64, "augment": "rrc", "limit_train": 500},
                                 train={"lr": 0.007, "schedule": "multistep", "milestones": [10, 20],
                                        "epochs": 30, "optimizer": "sgd", "nesterov": True, "mixup": 0.2,
                                        "group_lr_mult": [0.1, 0.5, 1.0]},
                                 name="report 004 & friends")
    query = config_to_query(config)
    assert query["model"] == "resnet18" and query["lr"] == "0.007" and query["milestones"] == "10,20"
    assert query["pretrained"] == "true" and query["name"] == "report 004 & friends"
    assert "batch_size" not in query  # only what differs from the defaults
    shared = config_from_query(query)
    assert shared.config == config and shared.problems == [] and shared.applied == query


def test_keys_are_short_and_dotted_keys_work_too():
    assert query_key("model", "name") == "model" and query_key("data", "source") == "data"
    assert query_key("train", "lr") == "lr"
    shared = config_from_query({"train.lr": "0.5", "model.name": "alexnet", "limit_train": ""})
    assert shared.config.train.lr == 0.5 and shared.config.model.name == "alexnet"
    assert shared.config.data.limit_train is None and not shared.problems


def test_bad_values_keep_their_defaults_and_are_named_in_one_sentence():
    shared = config_from_query({"lr": "fast", "epochs": "-3", "colour": "red", "optimizer": "sgd",
                                "pretrained": "maybe", "batch_size": "8", "schedule": "sideways",
                                "model": "nonet"}, models=["lenet", "resnet18"])
    c = shared.config
    assert c.train.optimizer == "sgd" and c.train.batch_size == 8           # the good ones are used
    assert c.train.lr == 3e-3 and c.train.epochs == 10 and c.model.pretrained is False
    assert c.train.schedule == "cosine" and c.model.name == "lenet"         # the bad ones keep defaults
    message = shared.message()
    assert message.endswith(".") and "\n" not in message
    assert message.startswith("Some settings in this link could not be used")
    for words in ("lr must be a number", "epochs must be at least 1", "no setting called 'colour'",
                  "pretrained must be true or false", "and more"):
        assert words in message, words


def test_settings_that_do_not_fit_together_fall_back_to_the_defaults():
    shared = config_from_query({"freeze": "backbone", "lr": "0.1"})   # freezing needs pretrained weights
    assert shared.config == RunConfig()
    assert shared.message().startswith("The settings in this link do not fit together (freezing")


def test_absurd_links_are_refused_without_work():
    assert config_from_query({f"k{i}": "1" for i in range(500)}).config == RunConfig()
    shared = config_from_query({"data": "x" * 5000})
    assert shared.config.data.source == "digits" and "longer than" in shared.message()


# -- the Train page ------------------------------------------------------------------------------

def train_page(**params: str) -> AppTest:
    """The app opened at /train?params, through its router (as a browser following a link would)."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    return at.switch_page("pages/train.py").run()


def widget(at: AppTest, section: str, name: str):
    key = state.form_key(section, name)
    return next(w for kind in ("number_input", "selectbox", "text_input", "checkbox") for w in getattr(at, kind)
                if w.key == key)


def test_a_link_opens_the_train_form_with_its_settings():
    at = train_page(model="resnet18", pretrained="true", freeze="backbone", lr="0.01", epochs="4",
                    optimizer="sgd", milestones="2,3", schedule="multistep", augment="rrc", name="lesson 2")
    assert not at.exception, at.exception
    assert not at.warning
    assert widget(at, "model", "name").value == "resnet18"
    assert widget(at, "model", "pretrained").value is True
    assert widget(at, "model", "freeze").value == "backbone"
    assert widget(at, "train", "lr").value == 0.01
    assert widget(at, "train", "epochs").value == 4
    assert widget(at, "train", "optimizer").value == "sgd"
    assert widget(at, "train", "schedule").value == "multistep"
    assert widget(at, "train", "milestones").value == "2, 3"
    assert widget(at, "data", "augment").value == "rrc"
    assert widget(at, "", "name").value == "lesson 2"
    assert widget(at, "train", "batch_size").value == 16          # untouched settings keep their defaults
    assert at.query_params["lr"] == "0.01"                         # the URL still holds them, in canonical form


def test_a_link_with_bad_values_warns_once_and_keeps_the_defaults():
    at = train_page(lr="-1", colour="red", batch_size="8")
    assert not at.exception
    assert len(at.warning) == 1
    warning = at.warning[0].value
    assert "lr must be greater than 0" in warning and "'colour'" in warning and warning.endswith(".")
    assert widget(at, "train", "lr").value == 0.003
    assert widget(at, "train", "batch_size").value == 8
    assert at.query_params == {"batch_size": "8"}                  # the URL drops what was not used


def test_the_form_is_reflected_in_the_url_when_asked():
    at = train_page()
    assert not at.exception and at.query_params == {}
    widget(at, "train", "epochs").set_value(7)
    widget(at, "train", "optimizer").set_value("adamw")
    at.button(key=state.KEY_TRAIN_SHARE).click().run()
    assert not at.exception
    assert at.query_params == {"epochs": "7", "optimizer": "adamw"}
    assert runs.list_runs() == []                                  # sharing trains nothing
    assert "?epochs=7&optimizer=adamw" in at.code[0].value
    at.run()                                                       # a rerun keeps the form as it is
    assert widget(at, "train", "epochs").value == 7 and not at.warning


def test_a_settings_file_is_what_the_page_downloads_and_what_train_reads(tmp_path):
    config = RunConfig().replace(train={"lr": 0.02, "epochs": 2}, model={"name": "lenet_custom"})
    text = config_json(config.to_dict())
    assert config_from_json("settings.json", text.encode()) == config
    (tmp_path / "settings.json").write_text(text)
    assert RunConfig.from_json_file(tmp_path / "settings.json") == config   # what `cvdemo train --config` reads
    from cvdemo.errors import CvdemoError

    with pytest.raises(CvdemoError, match="not a JSON settings file"):
        config_from_json("photo.png", b"\x89PNG\r\n")
    with pytest.raises(CvdemoError, match="lr"):
        config_from_json("bad.json", json.dumps({"train": {"lr": -1}}).encode())


# -- the Runs page's report ----------------------------------------------------------------------

def test_the_runs_page_makes_the_report_for_download(digits_run):
    shutil.copytree(digits_run, runs.default_root() / digits_run.name)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key=state.KEY_COMPARE).value == [digits_run.name]
    assert not at.get("download_button") or all(b.proto.label != "Download the report (HTML)"
                                               for b in at.get("download_button"))
    at.button(key=state.KEY_REPORT_BUILD).click().run()
    assert not at.exception, at.exception
    stored = at.session_state[state.KEY_REPORT]
    text = stored["html"].decode("utf-8")
    assert text.startswith("<!DOCTYPE html>") and "Confusion matrix" in text and "Grad-CAM" in text
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the report (HTML)" in labels


def test_an_uploaded_data_set_travels_by_its_stored_name_never_its_server_path(tmp_path, monkeypatch):
    from cvdemo import uploads
    from cvdemo.share import source_from_query

    monkeypatch.setenv("CVDEMO_RUNS", str(tmp_path / "runs"))
    stored = uploads.save_zip(_zip_bytes())
    config = RunConfig().replace(data={"source": str(stored)})
    query = config_to_query(config)
    assert query["data"] == f"upload:{stored.name}" and str(tmp_path) not in "".join(query.values())
    back = config_from_query(query)
    assert back.problems == [] and back.config.data.source == str(stored)
    for bad in ("upload:../../etc/passwd", "upload:upload-0000000000000000.zip", "upload:/tmp/x.zip"):
        shared = config_from_query({"data": bad})
        assert shared.config.data.source == RunConfig().data.source
        assert shared.problems and "not on this computer" in shared.problems[0], shared.problems
    with pytest.raises(ConfigError):
        source_from_query("upload:")
    assert source_from_query("/home/teacher/photos") == "/home/teacher/photos"  # a folder of one's own stays


def _zip_bytes() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("cats/a.png", b"not really a png: the link only names the file")
    return out.getvalue()
