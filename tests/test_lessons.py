"""Lessons: files validated like recipes, a text measured from the runs, and `cvdemo lesson` end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
from audit_data import picture
from helpers import cvdemo

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError
from cvdemo.lesson_results import lesson_outcome, lesson_rows, run_labels
from cvdemo.lessons import OTHER_DATA_LIMITS, list_lessons, load_lesson, parse_lesson
from cvdemo.models import pretrained_offline
from cvdemo.recipes import list_recipes, load_recipe

REQUIRED = ["learning-rate", "batch-size", "overfitting", "transfer", "residual", "optimizers"]
REPORTS = ["000", "001", "002", "003", "004"]  # the student reports of MISSION.md
GOOD = {"version": 1, "title": "t", "question": "q?", "recipe": "lenet-digits",
        "arms": [{"label": "lr 0.001", "config": {"train": {"lr": 0.001}}}, {"label": "lr 0.1",
                                                                              "config": {"train": {"lr": 0.1}}}]}


@pytest.mark.parametrize("name", list_lessons())
def test_each_shipped_lesson_validates_and_says_how_long_it_took(name):
    lesson = load_lesson(name)
    assert 2 <= len(lesson.arms) <= 4
    assert lesson.title and lesson.question.endswith("?")
    assert len({a.label for a in lesson.arms}) == len(lesson.arms)
    assert all(a.config.name == a.label for a in lesson.arms)
    # the arms differ in what their labels say, not in nothing
    assert len({a.config.to_json() for a in lesson.arms}) == len(lesson.arms)
    assert lesson.seconds is not None and lesson.seconds > 0 and "digits" in lesson.measured_on


def test_the_named_lessons_exist():
    assert set(REQUIRED) <= set(list_lessons())


@pytest.mark.parametrize("report", REPORTS)
def test_each_student_report_is_a_lesson_that_runs_offline_and_says_what_the_real_one_needs(report):
    lesson = load_lesson(f"report-{report}")
    assert lesson.report == report and lesson.title.startswith(f"Report {report}:")
    assert f"Report {report}" in lesson.question
    # offline by default: the built-in digits, and pretrained weights only where they ship with a package
    for arm in lesson.arms:
        assert arm.config.data.source == "digits"
        assert not arm.config.model.pretrained or pretrained_offline(arm.config.model.name), arm.label
    # the card says how to run it on the report's own data, and which recipe redoes it in full
    assert "--data" in lesson.data_note
    recipes = [n for n in list_recipes() if load_recipe(n).report == report]
    assert recipes and any(f"--recipe {n}" in lesson.data_note or f"recipe {n}" in lesson.data_note
                           for n in recipes)


def test_on_other_data_each_arm_trains_on_a_subset_about_the_digits_size():
    lesson = load_lesson("learning-rate")
    assert {(a.config.data.limit_train, a.config.data.limit_test) for a in lesson.arms} == {(None, None)}
    on_zip = lesson.on_data("photos.zip")
    assert [(a.config.data.source, a.config.data.limit_train, a.config.data.limit_test) for a in on_zip.arms] == \
        [("photos.zip", *OTHER_DATA_LIMITS)] * len(lesson.arms)
    assert [c for _, c in lesson.configs_for("photos.zip")] == [a.config for a in on_zip.arms]
    assert [a.config.train for a in on_zip.arms] == [a.config.train for a in lesson.arms]  # only the data moved
    # a lesson's own smaller limits stay: overfitting is about 50 images wherever it runs
    small = load_lesson("overfitting").on_data("photos.zip")
    assert {(a.config.data.limit_train, a.config.data.limit_test) for a in small.arms} == {(50, 200)}
    # limits asked for replace the lesson's; None lifts them
    asked = load_lesson("overfitting").on_data("photos.zip", limit_train=500, limit_test=None)
    assert {(a.config.data.limit_train, a.config.data.limit_test) for a in asked.arms} == {(500, None)}
    # on the lesson's own data nothing changes unless asked
    assert lesson.on_data("digits") == lesson and lesson.on_data(None) == lesson
    assert {a.config.data.limit_train for a in lesson.on_data(None, limit_train=300).arms} == {300}


def test_an_arm_is_the_recipe_with_the_lessons_and_its_own_changes():
    lesson = load_lesson("learning-rate")
    lrs = [a.config.train.lr for a in lesson.arms]
    assert lrs == sorted(lrs) and lrs[-1] >= 100 * lrs[0]
    for arm in lesson.arms:  # the lesson's shared changes on top of lenet5-digits, then the arm's
        assert arm.config.data.source == "digits"
        assert arm.config.train.optimizer == "sgd" and arm.config.train.schedule == "constant"
    other = lesson.configs_for("mnist")
    assert [c.data.source for _, c in other] == ["mnist"] * len(lesson.arms)
    assert [c.train.lr for _, c in other] == lrs


@pytest.mark.parametrize("change, fragment", [
    ({"arms": [GOOD["arms"][0]]}, "two to four arms"),
    ({"arms": GOOD["arms"] * 3}, "two to four arms"),
    ({"arms": [GOOD["arms"][0], GOOD["arms"][0]]}, "two arms labelled 'lr 0.001'"),
    ({"arms": [GOOD["arms"][0], {"label": "x", "config": {"train": {"lr": -1}}}]}, "arm 'x': train.lr"),
    ({"arms": [GOOD["arms"][0], {"label": "x", "config": {"train": {"learning_rate": 1}}}]}, "did you mean 'lr'"),
    ({"arms": [GOOD["arms"][0], {"label": "a much too long label naming everything at once"}]}, "at most 32"),
    ({"arms": [GOOD["arms"][0], {"config": {}}]}, "needs 'label'"),
    ({"recipe": "no-such-recipe"}, "names no recipe 'no-such-recipe'"),
    ({"question": ""}, "needs 'question'"),
    ({"version": 2}, "reads version 1"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"watch": {"curves": ["weights"]}}, "watch.curves"),
    ({"watch": {"page": "nowhere"}}, "watch.page"),
    ({"measured": {"seconds": -3}}, "measured.seconds"),
    ({"report": "007"}, "report must be one of the reports the recipes reproduce (000, 001"),
    ({"data_note": ["CUB"]}, "needs 'data_note' as"),
])
def test_a_bad_lesson_is_one_sentence(change, fragment):
    with pytest.raises(ConfigError) as e:
        parse_lesson({**GOOD, **change}, "broken")
    text = str(e.value)
    assert fragment in text and "lesson broken" in text and "\n" not in text


def test_a_lesson_file_that_is_not_json_or_missing_is_one_sentence(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"title": "t",\n "arms": [', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lesson bad.json is not valid JSON \(line 2"):
        load_lesson(str(bad))
    with pytest.raises(ConfigError, match="no lesson named 'nope'.*learning-rate"):
        load_lesson("nope")


def _finished(root, label, *, top1, val, train=None, state="completed", diverged_at=None, seconds=10.0):
    """A run folder written by hand: epochs with validation top-1 `val` (a list), the test top-1, the state."""
    run_dir = runs.create_run(root, RunConfig().replace(name=label))
    for epoch, v in enumerate(val, 1):
        runs.append_metrics(run_dir, {"kind": "step", "step": epoch * 10, "epoch": epoch, "loss": 1.0 / epoch})
        runs.append_metrics(run_dir, {"kind": "epoch", "epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.1,
                                      "train_top1": train if train is not None else v, "val_top1": v})
    summary = {"seconds": seconds, "data": {"classes": [str(i) for i in range(10)]}}
    if diverged_at is not None:
        summary["diverged"] = {"epoch": 1, "step": diverged_at, "loss": "31000.0", "lr": 1.0}
    if top1 is not None:
        summary["test"] = {"top1": top1}
    runs.write_json(run_dir / "summary.json", summary)
    runs.write_status(run_dir, state)
    return run_dir


def test_the_outcome_is_written_from_the_measured_runs(tmp_path):
    slow = _finished(tmp_path, "lr 0.0003", top1=0.81, val=[0.40, 0.70, 0.82])
    right = _finished(tmp_path, "lr 0.003", top1=0.97, val=[0.90, 0.95, 0.97])
    blown = _finished(tmp_path, "lr 1.0", top1=None, val=[], state="diverged", diverged_at=37, seconds=1.0)
    arms = [("lr 0.0003", slow), ("lr 0.003", right), ("lr 1.0", blown)]
    text = lesson_outcome(arms)
    assert "The run at lr 1.0 diverged at step 37 (loss 3.1e+04)" in text
    assert "lr 0.003 reached 97.0% test top-1" in text and "lr 0.0003 reached 81.0% test top-1" in text
    assert "After one epoch the validation top-1 was 40.0% for lr 0.0003, 90.0% for lr 0.003" in text
    assert "Best: lr 0.003, 16.0 points ahead of lr 0.0003." in text
    rows = lesson_rows(arms)
    assert [(r["arm"], r["state"], r["health"]) for r in rows] == [
        ("lr 0.0003", "completed", "healthy"), ("lr 0.003", "completed", "healthy"),
        ("lr 1.0", "diverged", "diverged")]
    assert rows[1]["best val top-1"] == 0.97 and rows[1]["test top-1"] == 0.97


def test_the_outcome_names_a_gap_between_training_and_validation(tmp_path):
    plain = _finished(tmp_path, "plain", top1=0.80, val=[0.7, 0.8, 0.8], train=1.0)
    augmented = _finished(tmp_path, "augmented", top1=0.86, val=[0.7, 0.8, 0.86], train=0.88)
    text = lesson_outcome([("plain", plain), ("augmented", augmented)])
    assert "plain reached 80.0% test top-1 (100.0% on its training images, 80.0% on validation" in text
    assert "augmented reached 86.0% test top-1." in text


def test_no_outcome_while_an_arm_still_trains(tmp_path):
    done = _finished(tmp_path, "a", top1=0.9, val=[0.9])
    running = _finished(tmp_path, "b", top1=None, val=[0.5], state="running")
    assert lesson_outcome([("a", done), ("b", running)]) is None


def test_legend_labels_are_the_arm_names_made_unique(tmp_path):
    a = _finished(tmp_path, "lr 0.1", top1=0.9, val=[0.9])
    b = _finished(tmp_path, "lr 0.1", top1=0.9, val=[0.9])
    c = runs.create_run(tmp_path, RunConfig())
    labels = run_labels([a, b, c])
    assert labels[0].startswith("lr 0.1 · ") and labels[0] != labels[1] and labels[2] == "lenet"


def test_cli_lists_the_lessons():
    proc = cvdemo("lesson", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    names = [lesson["name"] for lesson in json.loads(proc.stdout.strip().splitlines()[-1])["lessons"]]
    assert set(REQUIRED) <= set(names)


def test_cli_lists_what_a_report_lesson_needs_for_the_real_experiment():
    proc = cvdemo("lesson", "list")
    assert proc.returncode == 0, proc.stderr
    assert "report-000" in proc.stdout and load_lesson("report-000").data_note in proc.stdout


def test_cli_limit_that_is_not_a_number_is_one_sentence():
    proc = cvdemo("lesson", "run", "learning-rate", "--limit-train", "lots")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "whole number of images of at least 1, or 'all'" in proc.stderr and "Traceback" not in proc.stderr


def _colour_folder(root, per_class=10):
    """train/ and test/ of two classes of 48x48 RGB pictures (a warm disc, a cool square)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", per_class // 2)):
        for kind in ("discs", "squares"):
            (root / split / kind).mkdir(parents=True)
            for i in range(n):
                picture(kind, rng).save(root / split / kind / f"{i}.png")
    return root


def test_cli_runs_a_digits_lesson_on_a_colour_folder_within_the_limits(tmp_path):
    """LeNets built for grey 8x8 digits take 3-channel pictures when the lesson runs on them, and
    --limit-train/--limit-test reach every arm's data config."""
    lesson = {"version": 1, "title": "tiny", "question": "does it run on photos?",
              "config": {"data": {"source": "digits"}, "train": {"epochs": 1, "batch_size": 4}},
              "arms": [{"label": "LeNet-5", "config": {"model": {"name": "lenet"}}},
                       {"label": "LeNet custom", "config": {"model": {"name": "lenet_custom"}}}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(lesson), encoding="utf-8")
    folder = _colour_folder(tmp_path / "pictures")
    proc = cvdemo("lesson", "run", str(path), "--data", str(folder), "--limit-train", "12", "--limit-test", "4",
                  "--out", str(tmp_path / "runs"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert f"on {folder}: at most 12 training images and at most 4 validation and test images each" in proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["state"] for r in result["rows"]] == ["completed", "completed"]
    for run in map(Path, result["runs"]):
        config = json.loads((run / "config.json").read_text())
        assert config["data"]["source"] == str(folder)
        assert (config["data"]["limit_train"], config["data"]["limit_test"]) == (12, 4)
        data = json.loads((run / "summary.json").read_text())["data"]
        assert data["channels"] == 3 and data["train"] == 12 and data["test"] == 4


def test_cli_run_without_a_name_is_one_sentence():
    proc = cvdemo("lesson", "run")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "say which lesson to run" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_runs_a_small_lesson_end_to_end(tmp_path):
    lesson = {"version": 1, "title": "tiny", "question": "does it run?",
              "config": {"data": {"source": "digits", "limit_train": 200, "limit_test": 100},
                         "train": {"epochs": 2, "batch_size": 32, "schedule": "constant"}},
              "arms": [{"label": "lr 0.003", "config": {"train": {"lr": 0.003}}},
                       {"label": "sgd lr 5", "config": {"model": {"name": "lenet_custom"},
                                                        "train": {"optimizer": "sgd", "lr": 5.0}}}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(lesson), encoding="utf-8")
    proc = cvdemo("lesson", "run", str(path), "--out", str(tmp_path / "runs"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = {r["arm"]: r for r in result["rows"]}
    assert rows["lr 0.003"]["state"] == "completed" and rows["lr 0.003"]["test top-1"] > 0.5
    assert rows["sgd lr 5"]["state"] == "diverged" and rows["sgd lr 5"]["health"] == "diverged"
    assert "The run at sgd lr 5 diverged at step" in result["outcome"]
    assert f"lr 0.003 reached {rows['lr 0.003']['test top-1']:.1%} test top-1" in result["outcome"]
    assert len(result["runs"]) == 2 and all((tmp_path / "runs").glob("*/summary.json"))
    human = cvdemo("lesson", "run", str(path), "--out", str(tmp_path / "runs"))
    assert "What you should see: " in human.stdout and "best val top-1" in human.stdout


def test_plain_and_residual_deep_networks_differ_only_in_the_skips():
    import torch

    from cvdemo.models import create_model

    torch.manual_seed(0)
    plain, residual = create_model("deep_plain", 10, in_channels=1), create_model("deep_resnet", 10, in_channels=1)
    assert [p.shape for p in plain.parameters()] == [p.shape for p in residual.parameters()]
    residual.load_state_dict(plain.state_dict())
    x = torch.rand(4, 1, 8, 8)
    plain.eval(), residual.eval()
    assert not torch.allclose(plain(x), residual(x))  # the same weights, another function: the `x +`
