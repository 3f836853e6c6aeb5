"""The Understand pages in a real browser: click a confusion-matrix cell and see its images, hover an
embedding point and see its image, drag a box and see a gallery, explain the cat photo; a screenshot
of each page for a person to look at."""

import re

import numpy as np
import pytest
from shots import open_page, screenshot, settle

pytestmark = pytest.mark.browser

IMAGENET_CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}


def test_evaluate_click_a_confusion_cell_shows_its_images(server, served_run, page):
    from cvdemo.evaluate import evaluate_run

    result = evaluate_run(served_run)
    names = result.classes
    off = result.confusion - np.diag(np.diag(result.confusion))
    t, p = np.unravel_index(off.argmax(), off.shape)   # the most common mix-up
    open_page(page, server["url"] + "/evaluate", "Evaluate")
    page.get_by_test_id("stAlertContentInfo").filter(has_text="Click a cell").wait_for(timeout=60_000)
    cell = page.locator(f'path[aria-label^="predicted class: {names[p]}; true class: {names[t]};"]').first
    cell.click(position={"x": 4, "y": 4}, timeout=30_000)   # the number in the middle of the cell works too
    page.locator("h3", has_text=f"{names[t]} → {names[p]}").wait_for(timeout=30_000)
    captions = page.get_by_test_id("stImageCaption").filter(has_text="#")
    captions.first.wait_for(timeout=30_000)
    assert captions.count() == int(result.confusion[t, p])
    settle(page)
    screenshot(page, "evaluate")


def test_embeddings_hover_shows_the_image_and_a_box_shows_a_gallery(server, served_run, page):
    open_page(page, server["url"] + "/embeddings", "Embeddings")
    chart = page.get_by_test_id("stVegaLiteChart").first
    points = chart.locator('path[role="graphics-symbol"]')
    points.first.wait_for(timeout=60_000)
    points.nth(len(points.all()) // 2).hover(force=True)
    tip_image = page.locator("#vg-tooltip-element img")
    tip_image.wait_for(timeout=10_000)
    assert tip_image.get_attribute("src").startswith("data:image/png;base64,")
    assert tip_image.evaluate("img => img.naturalWidth") > 0          # the browser decoded it

    area = chart.locator("svg.marks").bounding_box()
    page.mouse.move(area["x"] + 40, area["y"] + 40)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.6, area["y"] + area["height"] * 0.5, steps=10)
    page.mouse.up()
    heading = page.locator("h3", has_text=re.compile(r"^\d+ selected images?$"))
    heading.wait_for(timeout=30_000)
    assert int(heading.inner_text().split()[0]) > 0
    page.get_by_test_id("stImage").first.wait_for(timeout=30_000)
    settle(page)
    screenshot(page, "embeddings")


def test_explain_the_cat_photo_with_the_imagenet_network(server, page, cat_png):
    open_page(page, server["url"] + "/explain", "Explain")
    page.locator("input[type=file]").set_input_files(str(cat_png))
    heading = page.locator("h3", has_text="·").first
    heading.wait_for(timeout=120_000)
    assert heading.inner_text().split("·")[0].strip() in IMAGENET_CATS
    for method in ("Saliency", "Grad-CAM"):   # the default methods, each named under its map
        page.get_by_test_id("stImageCaption").filter(has_text=re.compile(f"^{method}$")).wait_for(timeout=240_000)
    page.get_by_text("filters of the stem (on the pixels)").wait_for(timeout=60_000)
    page.get_by_text("maps of the stem (on the pixels)").wait_for(timeout=60_000)   # the layer by its group
    # the photo, two overlays, the sanity check's trained and random-weight maps, the filters, the feature maps
    assert page.get_by_test_id("stImage").count() == 7
    settle(page, 1500)
    screenshot(page, "explain")
