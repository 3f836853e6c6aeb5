"""The app in a real browser: lessons, live training that survives page switches and reloads,
classification with the pretrained network, and a screenshot of every page for a person to look at."""

import re
import time

import pytest
from playwright.sync_api import expect
from shots import screenshot, settle, start_lesson

from cvdemo import runs

pytestmark = pytest.mark.browser

IMAGENET_CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}


def title(page, text: str, timeout: float = 60_000) -> None:
    page.locator("h1", has_text=text).first.wait_for(timeout=timeout)


def go(page, name: str, heading: str | None = None) -> None:
    """Follow the sidebar link `name` and wait for the page's heading."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
    title(page, heading or name)


def metric(page, label: str) -> str:
    box = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(has_text=label))
    return box.get_by_test_id("stMetricValue").first.inner_text(timeout=2_000).strip()


def test_a_page_opened_first_on_a_fresh_server_gets_the_router(server, page):
    page.goto(server["url"] + "/train")
    title(page, "Train")
    nav = page.get_by_test_id("stSidebarNav")
    for section in ("Prepare", "Learn", "Use"):
        nav.get_by_text(section, exact=True).wait_for(timeout=10_000)
    assert nav.get_by_role("link", name="common").count() == 0


EPOCHS = 500  # far longer than the test on any machine: it is watched, switched away from, reloaded, then cancelled


def epochs_done(page) -> int | None:
    try:
        text = metric(page, "epochs done")
    except Exception:  # the page is being redrawn
        return None
    match = re.fullmatch(rf"(\d+) / {EPOCHS}", text)
    return int(match.group(1)) if match else None


def watch_epochs(page, seen: set, until, deadline: float) -> None:
    """Read the 'epochs done' metric into `seen` until `until(seen)` holds or the deadline passes."""
    while not until(seen) and time.time() < deadline:
        seen.add(epochs_done(page))
        time.sleep(0.2)


def test_train_curves_grow_across_page_switches_and_a_reload(server, page):
    page.goto(server["url"] + "/train")
    title(page, "Train")
    page.get_by_label("epochs", exact=True).fill(str(EPOCHS))
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Started run").wait_for(timeout=30_000)
    found = runs.list_runs(server["runs"])
    assert len(found) == 1 and found[0].epochs == EPOCHS
    run_dir = found[0].path

    def counts(seen: set) -> list[int]:
        return sorted(n for n in seen if n)

    seen: set = set()
    deadline = time.time() + 150
    watch_epochs(page, seen, lambda s: counts(s), deadline)  # the first epoch is on the curves
    page.get_by_test_id("stVegaLiteChart").nth(2).wait_for(timeout=15_000)  # loss, accuracy, learning rate
    settle(page)
    screenshot(page, "train-running")

    go(page, "Runs")                         # away and back while it trains
    go(page, "Train")
    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=30_000)
    seen.add(epochs_done(page))
    page.reload()                            # a new browser session: the run is found on disk
    title(page, "Train")
    assert runs.read_status(run_dir)["state"] == "running"
    before = max(counts(seen))
    watch_epochs(page, seen, lambda s: max(counts(s)) >= before + 2, deadline)  # still growing after the reload
    grown = counts(seen)
    assert len(grown) >= 3 and grown[-1] >= before + 2, seen   # watched growing, not only at one point

    page.get_by_role("button", name="Cancel this run").click()
    while runs.read_status(run_dir)["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.2)
    assert runs.read_status(run_dir)["state"] == "cancelled"
    page.get_by_text("The run was cancelled; its last finished epoch is saved.").wait_for(timeout=30_000)
    page.get_by_test_id("stVegaLiteChart").nth(2).wait_for(timeout=15_000)  # the curves stay, up to the last epoch
    settle(page)
    screenshot(page, "train-cancelled")


def test_classify_the_cat_photo_with_the_pretrained_network(server, page, cat_png):
    page.goto(server["url"] + "/classify")
    title(page, "Classify")
    page.locator("input[type=file]").set_input_files(str(cat_png))
    heading = page.locator("h3", has_text="·").first
    heading.wait_for(timeout=90_000)
    top1 = heading.inner_text().split("·")[0].strip()
    assert top1 in IMAGENET_CATS, top1
    page.get_by_text("All predictions").wait_for()
    settle(page, 1500)
    screenshot(page, "classify")


def test_home_lesson_opens_the_train_page_watching_its_run(server, page):
    page.goto(server["url"])
    title(page, "image classification playground")
    start_lesson(page, "Digits with LeNet")
    title(page, "Train")                                   # the lesson's run, watched where its curves grow
    page.get_by_test_id("stMetricLabel").filter(has_text="epochs done").wait_for(timeout=60_000)
    page.get_by_test_id("stMetricValue").filter(has_text=re.compile(r"^\d+ / 12$")).wait_for(timeout=30_000)
    settle(page)
    screenshot(page, "home-lesson-opens-train")
    run = runs.list_runs(server["runs"])[0]                 # the run the click started
    go(page, "Home", "image classification playground")
    page.get_by_text("Recent runs").wait_for(timeout=30_000)
    # a fast machine may finish the short lesson at any moment: Home shows it running, or already done
    page.get_by_text(re.compile(r"^Running now \([01]\)$")).wait_for(timeout=30_000)
    if page.get_by_text("Running now (1)").count():
        settle(page)
        screenshot(page, "home")
    if runs.read_status(run.path)["state"] in ("queued", "running"):
        deadline = time.time() + 60  # cancel once training proper has begun (its signal handler is in place)
        while time.time() < deadline:
            status = runs.read_status(run.path)
            if status["state"] not in ("queued", "running") or status.get("message", "").startswith("epoch"):
                break
            time.sleep(0.3)
        runs.cancel(run.path)                                  # False when it finished meanwhile: fine
    page.get_by_text("Running now (0)").wait_for(timeout=60_000)
    assert runs.read_status(run.path)["state"] in ("cancelled", "completed")


def test_model_page_with_a_frozen_pretrained_network(server, page):
    page.goto(server["url"] + "/model")
    title(page, "Model")
    page.get_by_test_id("stSelectbox").filter(has_text="Architecture").click()
    page.keyboard.type("efficientnet_lite0")
    page.keyboard.press("Enter")
    page.get_by_text("ship in a Python package").wait_for(timeout=30_000)
    page.get_by_text("Start from ImageNet weights").click()
    # The freeze box is disabled until the toggle's rerun lands: wait for it, then pick like a user.
    freeze = page.get_by_test_id("stSelectbox").filter(has_text="Freeze")
    expect(freeze.locator("input")).to_be_enabled(timeout=30_000)
    freeze.click()
    page.get_by_role("option", name="everything but the new head").click()
    page.get_by_text("trainable").first.wait_for()
    deadline = time.time() + 30
    while metric(page, "trainable") == metric(page, "parameters") and time.time() < deadline:
        time.sleep(0.2)
    assert metric(page, "trainable") != metric(page, "parameters")
    settle(page, 1500)
    screenshot(page, "model")


@pytest.mark.parametrize("name, heading, ready", [
    ("Data", "Data", "Augmentation preview"),
    ("Runs", "Runs", "Download or delete a run"),
    ("Home", "image classification playground", "Recent runs"),
])
def test_screenshot_every_page(server, page, name, heading, ready):
    page.goto(server["url"])
    title(page, "image classification playground")
    if name != "Home":
        go(page, name, heading)
    page.get_by_text(ready).first.wait_for(timeout=60_000)
    settle(page, 1500)
    screenshot(page, name.lower() if name != "Home" else "home-after-runs")


def test_two_browser_sessions_keep_their_own_choices(server, browser):
    """Per-user choices live in st.session_state: one student's architecture is not another's."""
    from cvdemo.models import create_model, get_spec

    def size(name):  # digits are grey: a model that takes any channel count gets 1, the others 3
        channels = 1 if get_spec(name).flexible_channels else 3
        return f"{sum(p.numel() for p in create_model(name, 10, in_channels=channels).parameters()):,}"

    pages = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pages.append(context.new_page())
    a, b = pages
    for p in pages:
        p.goto(server["url"] + "/model")
        title(p, "Model")
    a.get_by_test_id("stSelectbox").filter(has_text="Architecture").click()
    a.keyboard.type("resnet18")
    a.keyboard.press("Enter")

    def wait_for_parameters(p, expected):
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if metric(p, "parameters") == expected:
                    return
            except Exception:  # the page is being redrawn
                pass
            time.sleep(0.3)
        assert metric(p, "parameters") == expected

    wait_for_parameters(a, size("resnet18"))
    for p in pages:  # leave the page and come back inside the same session
        go(p, "Data")
        go(p, "Model")
    wait_for_parameters(a, size("resnet18"))
    wait_for_parameters(b, size("lenet"))
    for p in pages:
        p.context.close()
