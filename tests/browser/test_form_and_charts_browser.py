"""Issue 18, items 4, 7 and 9 in a real browser: the Train page draws at once after navigation; a bad
Train form says what is wrong with every field next to its Start button; the Runs page's overlaid loss
is on a log scale with a colour-blind-safe colour per run; the Embeddings box gallery's tiles stand
apart. Each leaves a screenshot under test-artifacts/screenshots/."""

import re
import time

import pytest
from helpers import recorded_run
from shots import heading, screenshot, settle, start_lesson

from cvdemo import runs
from pages.ui.charts import RUN_COLOURS

pytestmark = pytest.mark.browser

# When the Train page's title and its form first appeared, in ms since the observer started.
WATCH_TRAIN = """() => {
  window.__seen = {};
  const stamp = () => {
    const h1 = [...document.querySelectorAll('h1')].some(h => h.textContent.trim().startsWith('Train'));
    if (h1 && !window.__seen.title) window.__seen.title = performance.now();
    if (document.querySelector('[data-testid="stForm"]') && !window.__seen.form) window.__seen.form = performance.now();
  };
  new MutationObserver(stamp).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def test_train_page_draws_its_title_before_the_form_loads_torch(server, page):
    """First in this module: the server has not loaded torch yet, as after a fresh start."""
    page.goto(server["url"])
    heading(page, "image classification playground")
    page.evaluate(WATCH_TRAIN)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train", exact=True).click()
    heading(page, "Train", timeout=20_000)
    screenshot(page, "train-first-paint")          # the title and caption while the models load
    page.get_by_test_id("stForm").wait_for(timeout=120_000)
    seen = page.evaluate("() => window.__seen")
    assert seen["title"] < seen["form"] - 200, seen   # the page was not blank while torch loaded


def test_start_with_bad_values_names_every_field_and_its_range(server, page):
    page.goto(server["url"] + "/train")
    heading(page, "Train")
    page.get_by_test_id("stForm").wait_for(timeout=120_000)
    for label, value in (("epochs", "-5"), ("batch size", "100000"), ("lr", "-1")):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Tab")                          # commit the value without submitting the form
    page.get_by_role("button", name="Start training").click()
    alert = page.get_by_test_id("stAlertContentError").filter(has_text="Cannot start training")
    alert.wait_for(timeout=30_000)
    text = alert.inner_text()
    assert "these 3 are fixed" in text, text
    for line in ("epochs must be at least 1, got -5 — allowed: 1 to 10,000",
                 "batch size must be at most 65536, got 100000 — allowed: 1 to 65,536",
                 "lr must be greater than 0.0, got -1.0 — allowed: above 0 up to 1,000,000"):
        assert line in text, text
    assert runs.list_runs(server["runs"]) == []
    alert.scroll_into_view_if_needed()
    settle(page, 500)
    screenshot(page, "train-invalid-settings")


def test_runs_page_loss_is_readable_with_a_run_that_blew_up(server, served_run, page):
    bad = recorded_run(server["runs"], epochs_planned=200, losses=[310, 350, 420, 380, 360, 400, 390],
                       name="sgd lr 5")
    page.goto(server["url"] + "/compare")
    heading(page, "Runs")
    picker = page.get_by_test_id("stMultiSelect")
    picker.locator("input").click()
    picker.locator("input").fill(bad.name[-4:])
    picker.locator("input").press("Enter")
    page.keyboard.press("Escape")
    charts = page.get_by_test_id("stVegaLiteChart")
    legend = charts.nth(1).get_by_text("sgd lr 5", exact=True)  # the legend names a run by its own name
    legend.first.wait_for(timeout=30_000)
    assert page.get_by_test_id("stCheckbox").filter(has_text="Loss on a log scale").locator("input").is_checked()
    loss = charts.nth(1)
    loss.get_by_text("loss (log scale)").wait_for(timeout=10_000)
    labels = [t.strip() for t in loss.locator("g.role-axis-label text").all_text_contents()]
    assert {"0.1", "1", "10", "100"} <= set(labels), labels       # four decades, each readable
    strokes = {p.get_attribute("stroke") for p in loss.locator("g.mark-line path").all()}
    assert strokes == {c.lower() for c in RUN_COLOURS[:2]} or strokes == set(RUN_COLOURS[:2]), strokes
    settle(page)
    screenshot(page, "runs-compare-log-loss")

    page.get_by_test_id("stCheckbox").filter(has_text="Loss on a log scale").locator("label").click()
    loss.get_by_text("loss (log scale)").wait_for(state="detached", timeout=30_000)
    settle(page)
    screenshot(page, "runs-compare-linear-loss")


def test_embeddings_box_gallery_tiles_stand_apart(server, served_run, page):
    page.goto(server["url"] + "/embeddings")
    heading(page, "Embeddings")
    chart = page.get_by_test_id("stVegaLiteChart").first
    points = chart.locator('path[role="graphics-symbol"]')
    points.first.wait_for(timeout=120_000)
    points.nth(len(points.all()) // 2).hover(force=True)
    page.locator("#vg-tooltip-element img").wait_for(timeout=30_000)   # the chart is live
    area = chart.locator("svg.marks").bounding_box()
    page.mouse.move(area["x"] + 40, area["y"] + 40)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.7, area["y"] + area["height"] * 0.7, steps=10)
    page.mouse.up()
    page.locator("h3", has_text=re.compile(r"^\d+ selected images?$")).wait_for(timeout=30_000)
    tiles = page.locator("[data-testid='stImageContainer'] img")
    tiles.first.wait_for(timeout=30_000)
    settle(page)
    boxes = [t.bounding_box() for t in tiles.all()]
    assert len(boxes) > 4
    natural = tiles.first.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    for box in boxes:                                   # drawn whole, at the size they were made
        assert (round(box["width"]), round(box["height"])) == tuple(natural), (box, natural)
    rows: dict[int, list[dict]] = {}
    for box in boxes:
        rows.setdefault(round(box["y"]), []).append(box)
    for row in rows.values():                           # side by side, never on top of each other
        row.sort(key=lambda b: b["x"])
        assert all(a["x"] + a["width"] <= b["x"] + 0.5 for a, b in zip(row, row[1:])), row
    screenshot(page, "embeddings-box-gallery")


def test_projector_mode_shows_loss_and_accuracy_without_scrolling(server, page, served_run):
    """Item 5: ?projector=1 at 1400x900 puts the watched run's loss and accuracy side by side, both in view."""
    page.goto(server["url"] + "/train?projector=1")
    heading(page, "Train")
    charts = page.get_by_test_id("stVegaLiteChart")
    charts.nth(1).wait_for(timeout=60_000)
    settle(page, 1500)
    boxes = [charts.nth(i).bounding_box() for i in range(2)]
    assert all(b is not None and b["y"] + b["height"] <= 900 for b in boxes), boxes  # no scrolling needed
    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 5 and boxes[1]["x"] > boxes[0]["x"] + 300, boxes  # side by side
    assert page.get_by_test_id("stSidebar").get_by_text("Projector mode").is_visible()
    size = page.evaluate("() => getComputedStyle(document.querySelector('h1')).fontSize")
    assert float(size.removesuffix("px")) >= 44, size
    metric = page.evaluate("""() => {  // the innermost element: the text as drawn
      let el = document.querySelector('[data-testid=stMetricValue]');
      while (el.firstElementChild) el = el.firstElementChild;
      return getComputedStyle(el).fontSize; }""")
    assert float(metric.removesuffix("px")) >= 44, metric   # 2.6rem of the 20-px type: read from across a room
    assert "projector=1" in page.url
    screenshot(page, "train-projector", max_height=900)


def test_a_lesson_started_in_projector_mode_keeps_projector_mode_on_the_train_page(server, page):
    """Item 5: Start on Home switches to the Train page by code, which used to drop the mode."""
    page.goto(server["url"] + "/?projector=1")
    heading(page, "image classification playground")
    before = {r.id for r in runs.list_runs(server["runs"])}
    start_lesson(page, "Digits with LeNet")
    heading(page, "Train")
    page.get_by_test_id("stMetricLabel").filter(has_text="epochs done").wait_for(timeout=60_000)
    assert "projector=1" in page.url, page.url
    assert page.get_by_test_id("stSidebar").get_by_role("switch", name="Projector mode").is_checked()
    size = page.evaluate("() => getComputedStyle(document.querySelector('h1')).fontSize")
    assert float(size.removesuffix("px")) >= 44, size
    started = [r for r in runs.list_runs(server["runs"]) if r.id not in before]
    assert len(started) == 1
    deadline = time.time() + 120  # let the short lesson end: the next tests should not share the cores with it
    while runs.read_status(started[0].path)["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
