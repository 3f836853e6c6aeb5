"""Issue 18, item 11 in a real browser: Evaluate sets a second run's confusion matrix beside the first's."""

from shots import heading, screenshot, settle

from cvdemo import runs
from cvdemo.config import RunConfig


def test_two_runs_confusion_matrices_side_by_side(server, page, served_run):
    from cvdemo.train.job import run_training

    cfg = RunConfig().replace(train={"epochs": 1, "lr": 0.0003}, name="one short epoch")
    short = runs.create_run(server["runs"], cfg)
    run_training(cfg, short)
    page.goto(server["url"] + "/evaluate")
    heading(page, "Evaluate")
    page.get_by_text("Side by side with another run").wait_for(timeout=120_000)
    charts = page.get_by_test_id("stVegaLiteChart")
    charts.nth(4).wait_for(timeout=60_000)
    pair = page.get_by_text("Side by side with another run")
    pair.scroll_into_view_if_needed()
    settle(page, 1500)
    left, right = charts.nth(3).bounding_box(), charts.nth(4).bounding_box()
    assert abs(left["y"] - right["y"]) < 60 and right["x"] > left["x"] + left["width"] - 5  # side by side (a long
    # run label above one of them may take a second line)
    page.get_by_text("disagree on").wait_for()
    screenshot(page, "evaluate-side-by-side")
