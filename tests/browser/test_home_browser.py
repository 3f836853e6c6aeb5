"""Home page in a real browser: it loads, and its button starts a run that finishes."""

import pytest
from shots import screenshot

from cvdemo import runs

pytestmark = pytest.mark.browser


def test_home_train_digits_in_the_browser(server, page):
    page.goto(server["url"])
    page.get_by_text("image classification playground").wait_for(timeout=60_000)
    screenshot(page, "home-empty")
    page.get_by_role("button", name="Train digits").click()
    page.get_by_text("Started run").wait_for(timeout=30_000)
    found = runs.list_runs(server["runs"])
    assert len(found) == 1
    # The fragment refreshes the list every 2 s; the run finishes in seconds and shows as completed.
    page.get_by_text("Running now (0)").wait_for(timeout=120_000)
    assert runs.read_status(found[0].path)["state"] == "completed"
    screenshot(page, "home-after-run")
