"""Home's comparison lessons under AppTest: Start makes one run per arm with the arm's config, the lesson
view draws every arm, and "Change an arm" opens that arm in the Train form."""

import json
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.lessons import list_lessons, load_lesson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pages.ui import state  # noqa: E402


def home() -> AppTest:
    return AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()


@pytest.fixture
def no_training(monkeypatch):
    """runs.launch makes the run folder (config.json, status queued) but starts no training process: the
    page's part is which runs it asks for; the background process is runs.launch's, tested in test_app.py."""
    made: list[Path] = []

    def create_only(config, root=None):
        made.append(runs.create_run(root if root is not None else runs.default_root(), config))
        return made[-1]

    monkeypatch.setattr(runs, "launch", create_only)
    return made


@pytest.mark.parametrize("name", list_lessons())
def test_start_creates_one_run_per_arm_with_the_lessons_configs(name, no_training):
    lesson = load_lesson(name)
    at = home()
    assert not at.exception, at.exception
    at.button(key=state.KEY_COMPARE_START + name).click().run()
    assert not at.exception, at.exception
    assert len(no_training) == len(lesson.arms)
    made = [RunConfig.from_dict(json.loads((d / "config.json").read_text())) for d in no_training]
    assert made == [arm.config for arm in lesson.arms]
    active = at.session_state[state.KEY_ACTIVE_LESSON]
    assert active["lesson"] == name
    assert [label for label, _ in active["arms"]] == [arm.label for arm in lesson.arms]
    assert [Path(d) for _, d in active["arms"]] == no_training
    # the lesson view: its title, one chart per watched curve with every arm in the legend, one row per arm
    assert any(lesson.title in s.value for s in at.subheader)
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert len(specs) == len([c for c in lesson.curves if c != "gradients"])  # heat maps wait for records
    table = next(d.value for d in at.dataframe if "arm" in d.value.columns)
    assert list(table["arm"]) == [arm.label for arm in lesson.arms]
    assert set(table["state"]) == {"queued"}
    assert any("when all" in c.value and "have finished" in c.value for c in at.caption)


def _ended(run_dir: Path, losses: list[float], val: list[float], state_: str, test: float | None) -> None:
    for epoch, (loss, v) in enumerate(zip(losses, val), 1):
        runs.append_metrics(run_dir, {"kind": "step", "step": epoch * 10, "epoch": epoch, "loss": loss, "lr": 0.1})
        runs.append_metrics(run_dir, {"kind": "epoch", "epoch": epoch, "train_loss": loss, "val_loss": loss,
                                      "train_top1": v, "val_top1": v})
    summary = {"seconds": 12.0, "data": {"classes": [str(i) for i in range(10)]}}
    if test is not None:
        summary["test"] = {"top1": test}
    else:  # the trainer's last step record: where the loss blew up
        summary["diverged"] = {"epoch": 1, "step": 9, "loss": "16900.0", "lr": 1.0}
        runs.append_metrics(run_dir, {"kind": "step", "step": 9, "epoch": 0.27, "loss": 16900.0, "lr": 1.0,
                                      "diverged": True})
    runs.write_json(run_dir / "summary.json", summary)
    runs.write_status(run_dir, state_)


def test_the_lesson_view_overlays_every_arm_and_writes_the_measured_outcome(no_training):
    at = home()
    at.button(key=state.KEY_COMPARE_START + "learning-rate").click().run()
    low, right, high = no_training
    _ended(low, [2.0, 1.6, 1.2], [0.5, 0.7, 0.85], "completed", 0.84)
    _ended(right, [1.0, 0.3, 0.1], [0.9, 0.95, 0.97], "completed", 0.96)
    _ended(high, [], [], "diverged", None)
    at.run()
    assert not at.exception, at.exception
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    for spec in specs:
        legend = (spec.get("encoding") or spec["layer"][0]["encoding"])["color"]["scale"]["domain"]
        assert legend == ["lr 0.001", "lr 0.03", "lr 1.0"]
    text = next(s.value for s in at.success if "What you should see" in s.value)
    assert "The run at lr 1.0 diverged at step 9" in text and "lr 0.03 reached 96.0% test top-1" in text


def test_change_an_arm_opens_its_settings_in_the_train_form():
    lesson = load_lesson("batch-size")
    at = home()
    at.button(key=f"{state.KEY_COMPARE_ARM}batch-size:2").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key=state.form_key("train", "lr")).value == lesson.arms[2].config.train.lr
    assert at.number_input(key=state.form_key("train", "batch_size")).value == 128


def test_the_residual_lesson_shows_each_arms_gradient_heat_map(no_training):
    at = home()
    at.button(key=state.KEY_COMPARE_START + "residual").click().run()
    for run_dir, stem in zip(no_training, (1e-9, 0.02)):  # the plain network's first group hardly gets a gradient
        for step in (1, 26, 51):
            groups = {g: {"grad_norm": v, "weight_norm": 3.0, "update_ratio": v / 10}
                      for g, v in zip(["stem", "stage1", "stage2", "stage3", "head"], [stem, 0.05, 0.1, 0.2, 0.3])}
            runs.append_metrics(run_dir, {"kind": "dynamics", "step": step, "epoch": step / 34, "groups": groups})
    at.run()
    assert not at.exception, at.exception
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    heat = [s for s in specs if s.get("mark", {}).get("type") == "rect"]
    assert len(heat) == 2 and len(specs) == 4
    assert heat[0]["encoding"]["y"]["sort"] == ["stem", "stage1", "stage2", "stage3", "head"]
    assert heat[0]["encoding"]["color"]["scale"]["type"] == "log"
    assert any("Gradients inside the network" in m.value for m in at.markdown)


def test_the_runs_page_compares_picked_runs_the_same_way():
    made = []
    for label, test in (("lr 0.001", 0.84), ("lr 0.03", 0.96)):
        made.append(runs.create_run(runs.default_root(), RunConfig().replace(name=label)))
        _ended(made[-1], [1.0, 0.5], [0.6, 0.9] if test > 0.9 else [0.4, 0.8], "completed", test)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    at.switch_page("pages/compare.py").run()
    at.multiselect(key=state.KEY_COMPARE).set_value([d.name for d in made]).run()
    assert not at.exception, at.exception
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    legend = (specs[0].get("encoding") or specs[0]["layer"][0]["encoding"])["color"]["scale"]["domain"]
    assert sorted(legend) == ["lr 0.001", "lr 0.03"]   # the runs' names, not their ids
    text = next(s.value for s in at.success if "What you should see" in s.value)
    assert "lr 0.03 reached 96.0% test top-1" in text and "Best: lr 0.03, 12.0 points ahead of lr 0.001." in text


def test_a_reload_shows_the_same_lesson_again_from_the_address(no_training):
    """The lesson shown on Home lives in the URL (?lesson=...&runs=...): a reload is a new session with
    that address, and it shows the same lesson with the same runs."""
    at = home()
    at.button(key=state.KEY_COMPARE_START + "learning-rate").click().run()
    params = {k: v[-1] if isinstance(v, list) else v for k, v in at.query_params.items()}
    assert params == {"lesson": "learning-rate", "runs": ",".join(d.name for d in no_training)}
    started = at.session_state[state.KEY_ACTIVE_LESSON]

    reloaded = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    reloaded.query_params.update(params)
    reloaded.run()
    assert not reloaded.exception, reloaded.exception
    assert reloaded.session_state[state.KEY_ACTIVE_LESSON] == started
    lesson = load_lesson("learning-rate")
    assert any(lesson.title in s.value for s in reloaded.subheader)
    table = next(d.value for d in reloaded.dataframe if "arm" in d.value.columns)
    assert list(table["arm"]) == [arm.label for arm in lesson.arms]
    specs = [json.loads(c.proto.spec) for c in reloaded.get("vega_lite_chart")]
    assert len(specs) == len([c for c in lesson.curves if c != "gradients"])


@pytest.mark.parametrize("params, says", [
    ({"lesson": "no-such-lesson", "runs": "a,b,c"}, "no lesson called 'no-such-lesson'"),
    ({"lesson": "../../cvdemo/lessons/learning-rate", "runs": "a,b,c"}, "no lesson called"),
    ({"lesson": "learning-rate", "runs": "only-one"}, "names 1 runs for the lesson 'learning-rate', which has 3"),
    ({"lesson": "learning-rate", "runs": "..,x,y"}, "is not a run id"),
    ({"lesson": "learning-rate", "runs": "gone1,gone2,gone3"}, "run 'gone1' is not among the runs here"),
])
def test_a_link_to_a_lesson_that_cannot_be_shown_says_so_in_one_sentence(params, says):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    assert state.KEY_ACTIVE_LESSON not in at.session_state or not at.session_state[state.KEY_ACTIVE_LESSON]
    said = [c.value for c in at.caption if "cannot be shown" in c.value]
    assert len(said) == 1 and says in said[0].replace("\\", ""), said
    assert not any(s.value.startswith("Lesson:") for s in at.subheader)
    assert "lesson" not in at.query_params and "runs" not in at.query_params   # dropped from the address


def test_the_residual_lesson_draws_each_arms_dead_relu_share_per_group(no_training):
    at = home()
    at.button(key=state.KEY_COMPARE_START + "residual").click().run()
    for run_dir, dead in zip(no_training, (0.5, 0.0)):
        for step in (1, 11, 21):
            groups = {g: {"grad_norm": 0.1, "weight_norm": 3.0, "update_ratio": 0.01,
                          "dead_relu": None if g == "head" else dead * step / 21}
                      for g in ["stem", "stage1", "stage2", "stage3", "head"]}
            runs.append_metrics(run_dir, {"kind": "dynamics", "step": step, "epoch": step / 34, "groups": groups})
    at.run()
    assert not at.exception, at.exception
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    lines = [s for s in specs if s.get("encoding", {}).get("y", {}).get("field") == "dead_relu"]
    assert len(lines) == 2 and len(specs) == 6                # 2 curves, 2 heat maps, 2 dead-ReLU charts
    for spec in lines:
        assert spec["encoding"]["y"]["scale"]["domain"] == [0, 1]
        assert spec["encoding"]["color"]["sort"] == ["stem", "stage1", "stage2", "stage3", "head"]
    assert any("Dead ReLU units" in m.value for m in at.markdown)
    from pages.ui import charts

    drawn = charts.dynamics_lines(charts.dynamics_frame(runs.read_metrics(no_training[1])), "dead_relu").data
    assert set(drawn["group"]) == {"stem", "stage1", "stage2", "stage3"}   # the head has no ReLU
    assert (drawn["dead_relu"] == 0.0).all() and len(drawn) == 12          # 0 is a value: drawn, not dropped

