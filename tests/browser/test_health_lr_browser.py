"""Issue 18, items 2 and 3 in a real browser: a real run at SGD lr 5 is called out as unstable beside its
finished state on the Train page, a diverged one still draws its loss; the LR finder draws loss against
learning rate with the suggestion marked and "Use this rate" fills the form. Screenshots go to
test-artifacts/screenshots/."""

import pytest
from shots import heading, screenshot, settle

from cvdemo import runs
from cvdemo.config import RunConfig

pytestmark = pytest.mark.browser


def train(root, **train):
    from cvdemo.train.job import run_training

    config = RunConfig().replace(data={"limit_train": 400}, train={"optimizer": "sgd", "epochs": 2, **train})
    run_dir = runs.create_run(root, config)
    run_training(config, run_dir)
    return run_dir


def watch(page, server, run_dir) -> None:
    page.goto(server["url"] + "/train")
    heading(page, "Train")
    page.get_by_test_id("stForm").wait_for(timeout=120_000)
    picker = page.get_by_test_id("stSelectbox").filter(has_text="Watching run")
    picker.wait_for(timeout=30_000)
    picker.locator("input").click()
    page.get_by_role("option").filter(has_text=run_dir.name[-4:]).first.click()


def test_a_run_at_lr_5_is_called_out_on_the_train_page(server, page):
    run_dir = train(server["runs"], lr=5.0)
    assert runs.read_status(run_dir)["state"] == "completed"
    watch(page, server, run_dir)
    verdict = page.get_by_test_id("stAlertContentError").filter(has_text="Unstable.")
    verdict.wait_for(timeout=30_000)
    assert "run the LR finder" in verdict.inner_text()
    finished = page.get_by_test_id("stAlertContentInfo").filter(has_text="Finished: test top-1")
    assert finished.count() == 1                       # not green: finishing is not succeeding
    assert page.get_by_test_id("stAlertContentSuccess").filter(has_text="Finished").count() == 0
    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=30_000)
    settle(page)
    screenshot(page, "train-health-unstable-lr5")


def test_a_diverged_run_draws_its_loss_up_to_where_it_blew_up(server, page):
    run_dir = train(server["runs"], lr=1000.0)
    assert runs.read_status(run_dir)["state"] == "diverged"
    watch(page, server, run_dir)
    page.get_by_test_id("stAlertContentError").filter(has_text="The training diverged").wait_for(timeout=30_000)
    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=30_000)
    assert page.get_by_text("none has finished").count() == 1
    settle(page)
    screenshot(page, "train-health-diverged-lr1000")


def test_the_lr_finder_draws_its_sweep_and_fills_the_form(server, page):
    page.goto(server["url"] + "/train")
    heading(page, "Train")
    page.get_by_test_id("stForm").wait_for(timeout=120_000)
    for label, value in (("limit train", "200"), ("batch size", "16")):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Tab")
    page.get_by_role("button", name="Find a learning rate").click()
    chart = page.get_by_test_id("stVegaLiteChart").filter(has_text="learning rate (log scale)")
    chart.wait_for(timeout=180_000)
    chart.get_by_text("suggested:").wait_for(timeout=10_000)
    use = page.get_by_role("button", name="Use this rate")
    rate = use.inner_text().split("(")[1].split(")")[0]
    chart.scroll_into_view_if_needed()
    settle(page)
    screenshot(page, "train-lr-finder")
    use.click()
    lr_box = page.get_by_label("lr", exact=True)
    for _ in range(60):                     # the form is redrawn with the new value (the box is a new element)
        if lr_box.count() == 1 and lr_box.input_value() and float(lr_box.input_value()) == float(rate):
            break
        page.wait_for_timeout(500)
    assert float(lr_box.input_value()) == float(rate), (lr_box.input_value(), rate)
