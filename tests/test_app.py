"""App pages under Streamlit's AppTest: they render, and their main action does its job."""

import io
import json
import shutil
import sys
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cvdemo import runs, uploads
from cvdemo.config import RunConfig
from cvdemo.errors import CvdemoError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `pages` is a package beside streamlit_app.py

from pages.ui import state  # noqa: E402

PAGES = ["pages/home.py", "pages/data.py", "pages/model.py", "pages/train.py", "pages/compare.py",
         "pages/classify.py"]


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)


def on_page(page: str) -> AppTest:
    at = app().run()
    return at.switch_page(page).run()


def png(color=(200, 30, 30), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def wait_until_finished(run_dir: Path, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while runs.read_status(run_dir)["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
    return runs.read_status(run_dir)


def widget(at: AppTest, key: str):
    """The form widget with this key, whatever its kind."""
    return next(w for kind in ("number_input", "selectbox", "text_input", "checkbox") for w in getattr(at, kind)
                if w.key == key)


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


@pytest.fixture
def finished_run(digits_run):
    """The shared finished digits run, copied into this test's runs folder."""
    target = runs.default_root() / digits_run.name
    shutil.copytree(digits_run, target)
    return target


# -- every page ----------------------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_no_runs(page):
    at = on_page(page)
    assert not at.exception, at.exception
    assert at.title, page


def test_home_renders_with_no_runs():
    at = app().run()
    assert not at.exception
    assert "cvdemo" in at.title[0].value
    assert any("No runs yet" in i.value for i in at.info)
    assert [b.label for b in at.button][:2] == ["Start", "Change settings first"]
    assert "Digits with LeNet" in at.markdown[1].value


@pytest.mark.slow
def test_lesson_button_launches_a_background_run_that_the_train_page_can_cancel():
    at = app().run()
    at.button[0].click().run()
    assert not at.exception
    found = runs.list_runs()
    assert len(found) == 1
    assert (found[0].model, found[0].data, found[0].epochs) == ("lenet_custom", "digits", 12)
    assert at.session_state[state.KEY_WATCH_RUN] == found[0].id  # what the Train page opens on
    deadline = time.time() + 90  # cancel once training proper has begun
    while not runs.read_status(found[0].path).get("message", "").startswith("epoch") and time.time() < deadline:
        time.sleep(0.3)
    at.switch_page("pages/train.py").run()
    assert at.selectbox(key=state.KEY_WATCH_RUN).value == found[0].id
    at.button(key=state.KEY_TRAIN_CANCEL).click().run()
    assert not at.exception
    status = wait_until_finished(found[0].path, timeout=60)
    assert status["state"] == "cancelled", (status, (found[0].path / "log.txt").read_text()[-2000:])
    at.run()
    assert any("cancelled" in w.value for w in at.warning)
    at.switch_page("pages/home.py").run()
    assert at.dataframe[0].value["state"].iloc[0] == "cancelled"


def test_home_lesson_settings_open_the_train_form_with_that_lesson():
    at = app().run()
    at.button(key=state.KEY_LESSON_EDIT + "Digits with a small ResNet").click().run()
    assert not at.exception
    assert at.selectbox(key=state.form_key("model", "name")).value == "cifar_resnet"
    assert at.number_input(key=state.form_key("train", "epochs")).value == 3


# -- Data ---------------------------------------------------------------------------------------

def test_data_digits_shows_ten_classes_their_counts_and_samples():
    at = on_page("pages/data.py")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["classes"] == "10"
    assert metrics["train images"] == "1,078" and metrics["test images"] == "360"
    assert len(at.get("vega_lite_chart")) == 1                     # class counts
    assert len(at.get("image")) == 10 + 5                           # 10 class columns; original, 3 presets, yours
    stats = at.dataframe[0].value
    assert list(stats["channel"]) == ["grey"] and 0.2 < stats["mean"].iloc[0] < 0.4
    assert at.session_state[state.KEY_DRAFT]["data"]["source"] == "digits"


def test_data_torchvision_offline_shows_the_readable_error():
    at = on_page("pages/data.py")
    at.radio(key=state.KEY_DATA_KIND).set_value("torchvision").run()
    assert not at.error  # nothing is downloaded before the button is pressed
    at.button(key=state.KEY_DATA_LOAD).click().run()
    assert not at.exception
    assert at.error and "could not download mnist" in at.error[0].value
    assert at.session_state[state.KEY_DRAFT]["data"]["source"] == "digits"  # a failed choice is not kept


def class_zip(bad: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, color in (("cats", (220, 120, 20)), ("dogs", (20, 60, 220))):
            for i in range(8):
                z.writestr(f"{name}/{i}.png", png(color))
        if bad:
            z.writestr("cats/broken.png", b"this is not a picture")
    return buf.getvalue()


def test_data_zip_upload_is_stored_under_a_generated_name_and_reports_bad_files():
    at = on_page("pages/data.py")
    at.radio(key=state.KEY_DATA_KIND).set_value("zip").run()
    at.file_uploader(key=state.KEY_DATA_ZIP).set_value(("../../evil.zip", class_zip(), "application/zip")).run()
    assert not at.exception
    assert not at.error, texts(at, "error")
    stored = list((runs.default_root() / uploads.UPLOADS).glob("*.zip"))
    assert len(stored) == 1 and stored[0].name.startswith("upload-")
    assert runs.data_display_name(str(stored[0])) == "evil.zip"  # the name it came with, minus the path
    assert {m.label: m.value for m in at.metric}["classes"] == "2"
    assert any("broken.png" in w.value for w in at.warning)
    draft = at.session_state[state.KEY_DRAFT]["data"]
    assert draft["source"] == str(stored[0]) and draft["skip_bad"] is True


def test_data_image_files_with_a_class_each_become_a_folder():
    at = on_page("pages/data.py")
    at.radio(key=state.KEY_DATA_KIND).set_value("images").run()
    files = [(f"red{i}.png", png((220, 20, 20)), "image/png") for i in range(6)]
    files += [(f"blue-{i}.png", png((20, 20, 220)), "image/png") for i in range(6)]
    at.file_uploader(key=state.KEY_DATA_IMAGES).set_value(files).run()
    assert at.text_input(key=f"{state.KEY_DATA_CLASS}0").value == "red"
    assert at.text_input(key=f"{state.KEY_DATA_CLASS}6").value == "blue"
    for i in range(6, 12):
        at.text_input(key=f"{state.KEY_DATA_CLASS}{i}").set_value("Blue sky!")
    at.button(key=state.KEY_DATA_MAKE).click().run()
    assert not at.exception and not at.error, texts(at, "error")
    folder = Path(at.session_state[state.KEY_DRAFT]["data"]["source"])
    assert folder.parent == runs.default_root() / uploads.UPLOADS
    assert sorted(p.name for p in folder.iterdir()) == ["Blue sky", "red"]
    assert {m.label: m.value for m in at.metric}["classes"] == "2"


def test_data_missing_folder_is_an_error_message():
    at = on_page("pages/data.py")
    at.radio(key=state.KEY_DATA_KIND).set_value("folder").run()
    at.text_input(key=state.KEY_DATA_FOLDER).set_value("/no/such/folder").run()
    assert not at.exception
    assert "does not exist" in at.error[0].value


def test_uploaded_class_names_cannot_escape_the_uploads_folder():
    with pytest.raises(CvdemoError, match="no letters or digits"):
        uploads.save_labelled_images([("../..", "a.png", png()), ("b", "b.png", png())])
    with pytest.raises(CvdemoError, match="at least two classes"):
        uploads.save_labelled_images([("a", "a.png", png()), ("a/", "b.png", png())])
    folder = uploads.save_labelled_images([("../../etc", "../x.png", png()), ("b", "y.exe", png())])
    assert sorted(p.name for p in folder.iterdir()) == ["b", "etc"]
    assert [p.name for p in (folder / "b").iterdir()] == ["0001-y.png"]


# -- Model --------------------------------------------------------------------------------------

def test_model_lenet_shows_parameter_counts_and_layer_groups():
    at = on_page("pages/model.py")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["parameters"] == metrics["trainable"] == "61,706"
    assert metrics["input size"] == "32×32" and metrics["CAM layer"] == "features"
    groups = at.dataframe[0].value
    assert list(groups["group"]) == ["conv1", "conv2", "fc", "head"]
    assert groups["parameters"].sum() == 61_706
    assert set(groups["trains"]) == {"from the start"} and set(groups["learning rate"]) == {0.003}
    assert at.toggle(key=state.KEY_MODEL_PRETRAINED).disabled and at.selectbox(key=state.KEY_MODEL_FREEZE).disabled


def test_model_partial_freezing_and_discriminative_rates_show_in_the_group_table():
    at = app().run()
    at.session_state[state.KEY_DRAFT] = RunConfig().replace(
        model={"name": "resnet18", "pretrained": True, "freeze": "until:layer2"},
        train={"lr": 0.01, "lr_decay": 0.5, "unfreeze_at": [3]}).to_dict()
    at.switch_page("pages/model.py").run()
    assert not at.exception, at.exception
    groups = at.dataframe[0].value.set_index("group")
    assert list(groups.index) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert list(groups["trains"]) == ["frozen", "frozen", "from epoch 3", "from the start", "from the start",
                                      "from the start"]
    assert groups.loc["head", "learning rate"] == pytest.approx(0.01)
    assert groups.loc["layer4", "learning rate"] == pytest.approx(0.005)


def test_model_page_suggests_a_size_for_small_photos_and_the_train_form_takes_it():
    at = app().run()
    at.session_state[state.KEY_DRAFT] = RunConfig().replace(model={"name": "efficientnet_lite0"}).to_dict()
    at.session_state[state.KEY_DATA_INFO] = {"label": "scenes.zip", "classes": 6, "channels": 3,
                                             "image_size": (64, 64)}
    at.switch_page("pages/model.py").run()
    assert not at.exception, at.exception
    assert any("Your images are 64×64 px" in i.value for i in at.info), [i.value for i in at.info]
    at.button(key=state.KEY_MODEL_SIZE).click().run()
    assert at.session_state[state.KEY_DRAFT]["data"]["image_size"] == 128
    assert any("Image size 128 is set" in c.value for c in at.caption)
    at.switch_page("pages/train.py").run()
    assert at.number_input(key=state.form_key("data", "image_size")).value == 128


def test_model_pretrained_and_frozen_backbone_trains_only_the_head():
    at = on_page("pages/model.py")
    at.selectbox(key=state.KEY_MODEL_NAME).set_value("efficientnet_lite0").run()
    at.toggle(key=state.KEY_MODEL_PRETRAINED).set_value(True).run()
    at.selectbox(key=state.KEY_MODEL_FREEZE).set_value("backbone").run()
    assert not at.exception
    assert any("works offline" in c.value for c in at.caption)
    groups = at.dataframe[0].value
    assert set(groups["trains"][:-1]) == {"frozen"} and groups["trains"].iloc[-1] == "from the start"
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["trainable"].replace(",", "")) == groups["parameters"].iloc[-1]
    assert at.session_state[state.KEY_DRAFT]["model"] == {"name": "efficientnet_lite0", "pretrained": True,
                                                       "freeze": "backbone", "zero_init_residual": False}


# -- Train --------------------------------------------------------------------------------------

def test_train_form_has_a_widget_for_every_config_field():
    from cvdemo.config import RunConfig, field_infos

    at = on_page("pages/train.py")
    keys = {w.key for kind in ("number_input", "selectbox", "checkbox", "text_input") for w in getattr(at, kind)}
    for section in field_infos(RunConfig):
        if section.kind == "section":
            for f in field_infos(section.default):
                assert state.form_key(section.name, f.name) in keys, f.name
        else:
            assert state.form_key("", section.name) in keys


@pytest.mark.slow
def test_train_form_launches_a_run_that_completes_and_shows_its_curves():
    at = on_page("pages/train.py")
    at.number_input(key=state.form_key("train", "epochs")).set_value(2)
    at.text_input(key=state.form_key("", "name")).set_value("two epochs")
    at.button(key=state.KEY_TRAIN_START).click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert any("Started run" in s.value for s in at.success)
    found = runs.list_runs()
    assert len(found) == 1
    assert json.loads((found[0].path / "config.json").read_text())["train"]["epochs"] == 2
    status = wait_until_finished(found[0].path)
    assert status["state"] == "completed", (status, (found[0].path / "log.txt").read_text()[-2000:])
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["epochs done"] == "2 / 2"
    assert any("Finished" in s.value for s in at.success)
    assert len(at.get("vega_lite_chart")) == 3  # loss, accuracy, learning rate


@pytest.mark.parametrize("change, message", [
    ({("train", "schedule"): "multistep"}, "milestones"),
    ({("train", "lr"): 0.0}, "**lr** must be greater than 0"),
    ({("train", "milestones"): "3, x"}, "whole number"),
])
def test_train_form_with_a_bad_value_shows_the_error_and_launches_nothing(change, message):
    at = on_page("pages/train.py")
    for (section, name), value in change.items():
        widget(at, state.form_key(section, name)).set_value(value)
    at.button(key=state.KEY_TRAIN_START).click().run()
    assert not at.exception
    assert at.error and message in at.error[0].value, texts(at, "error")
    assert runs.list_runs() == []


def test_train_page_explains_a_diverged_run(finished_run):
    runs.write_status(finished_run, "diverged", "the loss became NaN at epoch 1, step 3 (learning rate 10); "
                                                "the learning rate is probably too high: try 1 or lower")
    at = on_page("pages/train.py")
    assert not at.exception
    assert "too high" in at.error[0].value and "diverged" in at.error[0].value


# -- Runs ---------------------------------------------------------------------------------------

def test_runs_page_lists_a_finished_run_and_compares_it(finished_run):
    at = on_page("pages/compare.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["run"]) == [finished_run.name] and table["state"].iloc[0] == "completed"
    assert at.multiselect(key=state.KEY_COMPARE).value == [finished_run.name]
    compared = at.dataframe[1].value
    summary = json.loads((finished_run / "summary.json").read_text())
    assert compared["test top-1"].iloc[0] == pytest.approx(summary["test"]["top1"])
    assert compared["parameters"].iloc[0] == summary["params_total"]
    assert len(at.get("vega_lite_chart")) == 2
    assert at.get("download_button")


def test_runs_scatter_appears_with_two_runs_that_differ(finished_run):
    other = finished_run.with_name(finished_run.name[:-4] + "beef")
    shutil.copytree(finished_run, other)
    config = json.loads((other / "config.json").read_text())
    config["train"]["lr"] = 0.05
    (other / "config.json").write_text(json.dumps(config))
    at = on_page("pages/compare.py")
    assert not at.exception
    assert at.selectbox(key=state.KEY_SCATTER_X).value == "train.lr"
    assert len(at.get("vega_lite_chart")) == 3


def test_runs_page_offers_last_pt_of_a_run_that_never_saved_best_pt():
    run_dir = runs.create_run(runs.default_root(), RunConfig())
    runs.write_status(run_dir, "cancelled", "stopped")
    (run_dir / "last.pt").write_bytes(b"weights")
    at = on_page("pages/compare.py")
    assert not at.exception
    assert at.selectbox(key=state.KEY_SELECTED_RUN).value == run_dir.name
    button = at.get("download_button")[-1].proto
    assert button.label == "Download last.pt"
    assert any("last finished epoch" in c.value for c in at.caption)


def test_runs_page_exports_a_run_as_a_zip_that_runs_without_cvdemo(finished_run):
    import torch

    at = on_page("pages/compare.py")
    at.button(key=state.KEY_EXPORT).click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert "Download the export (zip)" in [b.proto.label for b in at.get("download_button")]
    _, data, card = at.session_state[state.KEY_EXPORTED]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["model.pt", "model_card.json", "model_card.md"]
        module = torch.jit.load(io.BytesIO(z.read("model.pt")))
    probs = module(torch.rand(2, 1, 8, 8))
    assert probs.shape == (2, 10) and torch.allclose(probs.sum(1), torch.ones(2))
    assert card["check"]["max_abs_diff"] < 1e-4 and card["classes"] == [str(i) for i in range(10)]


@pytest.mark.slow
def test_runs_page_resumes_a_cancelled_run_in_the_background_and_opens_train():
    from cvdemo.train.job import run_training
    from cvdemo.train.trainer import StopTraining

    class StopAfterFirstEpoch:
        def on_epoch_end(self, trainer, record):
            raise StopTraining()

    cfg = RunConfig().replace(train={"epochs": 3})
    run_dir = runs.create_run(runs.default_root(), cfg)
    run_training(cfg, run_dir, callbacks=[StopAfterFirstEpoch()])
    assert runs.read_status(run_dir)["state"] == "cancelled" and (run_dir / "last.pt").exists()
    at = on_page("pages/compare.py")
    at.selectbox(key=state.KEY_SELECTED_RUN).set_value(run_dir.name).run()
    assert at.button(key=state.KEY_RESUME).label == "Resume from epoch 1"
    at.button(key=state.KEY_RESUME).click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert at.session_state[state.KEY_WATCH_RUN] == run_dir.name
    deadline = time.time() + 120
    while runs.read_status(run_dir)["state"] != "completed" and time.time() < deadline:
        time.sleep(0.5)
    assert runs.read_status(run_dir)["state"] == "completed"
    epochs = [m["epoch"] for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch"]
    assert epochs == [1, 2, 3]  # the first epoch kept, the other two trained on


def test_runs_delete_needs_confirmation_then_removes_the_folder(finished_run):
    at = on_page("pages/compare.py")
    assert at.button(key=state.KEY_DELETE).disabled
    at.checkbox(key=state.KEY_DELETE_CONFIRM).check().run()
    at.button(key=state.KEY_DELETE).click().run()
    assert not at.exception
    assert not finished_run.exists()
    assert any("Deleted run" in s.value for s in at.success)
    assert any("No runs yet" in i.value for i in at.info)


def test_delete_refuses_anything_but_a_finished_run_folder(finished_run, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(finished_run, outside)
    with pytest.raises(CvdemoError, match="not a run folder"):
        runs.delete_run(outside)
    with pytest.raises(CvdemoError, match="not a run folder"):
        runs.delete_run(runs.default_root() / uploads.UPLOADS)
    link = runs.default_root() / "link"
    link.symlink_to(outside)
    with pytest.raises(CvdemoError, match="not a run folder"):
        runs.delete_run(link)
    runs.write_status(finished_run, "running", "epoch 1 of 6", pid=__import__("os").getpid())
    with pytest.raises(CvdemoError, match="still running"):
        runs.delete_run(finished_run)
    assert finished_run.exists() and outside.exists()


# -- Classify -----------------------------------------------------------------------------------

def test_classify_with_a_run_gives_a_table_and_a_bad_file_an_error(finished_run):
    at = on_page("pages/classify.py")
    at.selectbox(key=state.KEY_CLASSIFY_WITH).set_value(str(finished_run)).run()
    at.slider(key=state.KEY_CLASSIFY_TOPK).set_value(3).run()
    at.file_uploader(key=state.KEY_CLASSIFY_FILES).set_value([
        ("seven.png", png((255, 255, 255), (8, 8)), "image/png"),
        ("broken.png", b"\x89PNG\r\n\x1a\n not really", "image/png"),
    ]).run()
    assert not at.exception
    assert len(at.error) == 1 and "broken.png" in at.error[0].value
    table = at.dataframe[0].value
    assert list(table["image"]) == ["seven.png"] * 3 and list(table["rank"]) == [1, 2, 3]
    assert set(table["class"]) <= {str(i) for i in range(10)}
    assert table["probability"].is_monotonic_decreasing
    assert at.get("download_button")


def test_classify_with_only_bad_files_stays_usable():
    at = on_page("pages/classify.py")
    at.file_uploader(key=state.KEY_CLASSIFY_FILES).set_value(("notes.png", b"hello world", "image/png")).run()
    assert not at.exception
    assert "not a readable image" in at.error[0].value
    assert not at.dataframe
