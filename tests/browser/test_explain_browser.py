"""Explain in a real browser: pick several methods at once, press Explain once, and see every chosen method's
map with its name under it, the checks said in words and the numbers in a details row."""

import re

import pytest
from shots import SCREENSHOTS, open_page, screenshot, settle

pytestmark = pytest.mark.browser

ADDED = ["Input × gradient", "Guided backprop", "Grad-CAM++", "Eigen-CAM", "LayerCAM", "HiResCAM"]
SHOWN = ["Saliency", "Input × gradient", "Guided backprop", "Grad-CAM", "Grad-CAM++", "Eigen-CAM", "LayerCAM",
         "HiResCAM"]   # catalogue order: family by family


def test_explain_eight_chosen_methods_in_one_pass(server, page, cat_png):
    open_page(page, server["url"] + "/explain", "Explain")
    page.locator("input[type=file]").set_input_files(str(cat_png))
    page.get_by_test_id("stImageCaption").filter(has_text=re.compile("^Grad-CAM$")).wait_for(timeout=240_000)
    for name in ADDED:   # inside the form: no rerun per click
        page.get_by_role("button", name=name, exact=True).click()
    page.get_by_test_id("stBaseButton-primaryFormSubmit").click()
    captions = page.get_by_test_id("stImageCaption")
    captions.filter(has_text=re.compile("^HiResCAM$")).wait_for(timeout=300_000)
    shown = [c for c in captions.all_inner_texts() if c in SHOWN]
    assert shown == SHOWN                                   # all eight, each named under its map
    sentences = page.get_by_text(re.compile("^Hiding the pixels this map points at"))
    sentences.nth(7).wait_for(timeout=300_000)              # the checks fill in under the maps after them
    assert sentences.count() == 8                           # the checks in words, one per map
    page.get_by_text("The numbers behind the checks").click()
    table = page.get_by_test_id("stDataFrame")
    table.wait_for(timeout=30_000)
    page.get_by_text("maps of the stem (on the pixels)").wait_for(timeout=60_000)
    settle(page, 2000)
    screenshot(page, "explain-eight-methods")

    picker = page.get_by_test_id("stSelectbox").filter(has_text="Feature maps of layer")
    picker.scroll_into_view_if_needed()
    picker.locator("input").click()   # the layers by group first, their code names second
    option = page.get_by_role("option", name="stage 1 (first block) · conv 1 of 8  —  _blocks.0._depthwise_conv")
    option.wait_for(timeout=30_000)
    option.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "explain-layer-picker.png"))
