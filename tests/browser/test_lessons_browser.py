"""Issue 14 in a real browser: the learning-rate lesson started from Home trains its three runs on digits
to the end; the lesson view overlays three curves, one colour per arm named by its label, and shows
the text measured from the runs; a reload shows it all again. Leaves
test-artifacts/screenshots/home-lesson-learning-rate.png (and -reloaded.png)."""

import json

import pytest
from shots import heading, screenshot, settle

from cvdemo import runs
from cvdemo.lessons import load_lesson
from pages.ui import state
from pages.ui.charts import RUN_COLOURS

pytestmark = pytest.mark.browser


def test_learning_rate_lesson_runs_to_the_end_and_says_what_it_measured(server, page):
    lesson = load_lesson("learning-rate")
    labels = [arm.label for arm in lesson.arms]
    page.goto(server["url"])
    heading(page, "cvdemo")
    settle(page)
    # Streamlit gives a keyed widget the class st-key-<key, other characters as "-">
    page.locator(f".st-key-{state.KEY_COMPARE_START.rstrip(':')}-learning-rate button").first.click()
    page.get_by_role("heading", name=f"Lesson: {lesson.title}").wait_for(timeout=60_000)
    started = [r for r in runs.list_runs(server["runs"])]
    assert sorted(json.loads((r.path / "config.json").read_text())["name"] for r in started) == sorted(labels)

    outcome = page.get_by_test_id("stAlert").filter(has_text="What you should see (measured)")
    outcome.first.wait_for(timeout=600_000)  # three runs sharing two loaded cores
    text = outcome.first.inner_text()
    states = {r.path.name: r.state for r in runs.list_runs(server["runs"])}
    assert set(states.values()) == {"completed", "diverged"}, states
    assert "The run at lr 1.0 diverged at step" in text, text
    for r in runs.list_runs(server["runs"]):
        if r.state == "completed":
            name = json.loads((r.path / "config.json").read_text())["name"]
            assert f"{name} reached {r.test_top1:.1%} test top-1" in text, text

    charts = page.get_by_test_id("stVegaLiteChart")
    loss = charts.nth(lesson.curves.index("loss"))
    for label in labels:  # the legend names every arm by what differs
        loss.get_by_text(label, exact=True).first.wait_for(timeout=30_000)
    strokes = {p.get_attribute("stroke").lower() for p in loss.locator("g.mark-line path").all()}
    assert strokes == {c.lower() for c in RUN_COLOURS[:3]}, strokes   # three curves, one colour each
    table = page.get_by_test_id("stDataFrame").filter(has_text="lr 0.03")
    assert table.count() >= 1
    settle(page, 1500)
    screenshot(page, "home-lesson-learning-rate")

    # a reload (a new session) shows the same lesson: its name and runs are in the address
    assert "lesson=learning-rate" in page.url, page.url
    page.reload()
    page.get_by_role("heading", name=f"Lesson: {lesson.title}").wait_for(timeout=60_000)
    page.get_by_test_id("stAlert").filter(has_text="What you should see (measured)").first.wait_for(timeout=60_000)
    loss = page.get_by_test_id("stVegaLiteChart").nth(lesson.curves.index("loss"))
    for label in labels:
        loss.get_by_text(label, exact=True).first.wait_for(timeout=30_000)
    strokes = {p.get_attribute("stroke").lower() for p in loss.locator("g.mark-line path").all()}
    assert strokes == {c.lower() for c in RUN_COLOURS[:3]}, strokes
    settle(page, 1500)
    screenshot(page, "home-lesson-learning-rate-reloaded")


def test_residual_lesson_shows_the_plain_networks_gradient_vanish(server, page):
    lesson = load_lesson("residual")
    page.goto(server["url"])
    heading(page, "cvdemo")
    settle(page)
    page.locator(f".st-key-{state.KEY_COMPARE_START.rstrip(':')}-residual button").first.click()
    page.get_by_role("heading", name=f"Lesson: {lesson.title}").wait_for(timeout=60_000)
    outcome = page.get_by_test_id("stAlert").filter(has_text="What you should see (measured)")
    outcome.first.wait_for(timeout=600_000)
    text = outcome.first.inner_text()
    assert "plain reached" in text and "residual reached" in text, text
    page.get_by_text("Gradients inside the network").first.wait_for(timeout=30_000)
    charts = page.get_by_test_id("stVegaLiteChart")
    heat = [c for c in charts.all() if c.locator("g.mark-rect path").count() > 0]
    assert len(heat) == 2                                   # one heat map per arm
    settle(page, 1500)
    screenshot(page, "home-lesson-residual")
