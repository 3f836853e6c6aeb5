"""The Explain page's attack section in a real browser: PGD on an uploaded photo of a cat changes the
ImageNet network's answer, with the original, the magnified noise and the attacked photo side by side."""

import re

import pytest
from shots import SCREENSHOTS, open_page, settle

pytestmark = pytest.mark.browser

IMAGENET_CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}


def test_pgd_on_an_uploaded_photo_shows_before_and_after(server, page, cat_png):
    open_page(page, server["url"] + "/explain", "Explain")
    page.locator("input[type=file]").set_input_files(str(cat_png))
    section = page.locator("h3", has_text="Fool the network")
    section.wait_for(timeout=240_000)
    section.scroll_into_view_if_needed()
    page.get_by_text("Press Attack to compute the noise").wait_for(timeout=60_000)
    page.get_by_test_id("stBaseButton-primary").filter(has_text="Attack").click()
    before = page.get_by_test_id("stMarkdown").filter(has_text=re.compile(r"^Before: "))
    after = page.get_by_test_id("stMarkdown").filter(has_text=re.compile(r"^After: "))
    after.first.wait_for(timeout=240_000)
    said_before = before.first.inner_text().removeprefix("Before: ").split(" · ")[0]
    said_after = after.first.inner_text().removeprefix("After: ").split(" · ")[0]
    assert said_before in IMAGENET_CATS, said_before
    assert said_after != said_before
    assert page.get_by_text(re.compile(r"it worked")).count() == 1
    page.get_by_test_id("stImageCaption").filter(has_text="the noise, magnified").wait_for(timeout=30_000)
    page.set_viewport_size({"width": 1400, "height": 1250})
    settle(page, 1500)
    section.evaluate("h => h.scrollIntoView({block: 'start'})")   # the section, as a class sees it projected
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "explain-attack.png"))
