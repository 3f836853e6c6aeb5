"""Lessons: files validated like recipes, a text measured from the runs, and `cvdemo lesson` end to end."""

import json

import pytest
from helpers import cvdemo

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError
from cvdemo.lesson_results import lesson_outcome, lesson_rows, run_labels
from cvdemo.lessons import list_lessons, load_lesson, parse_lesson

REQUIRED = ["learning-rate", "batch-size", "overfitting", "transfer", "residual", "optimizers"]
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


def test_an_arm_is_the_recipe_with_the_lessons_and_its_own_changes():
    lesson = load_lesson("learning-rate")
    lrs = [a.config.train.lr for a in lesson.arms]
    assert lrs == sorted(lrs) and lrs[-1] >= 100 * lrs[0]
    for arm in lesson.arms:  # the lesson's shared changes on top of lenet-digits, then the arm's
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
