"""The Draw page in a real browser: with no digits run it offers the lesson; with one, a "1" and a "7" drawn with
the mouse get an answer, top-5 bars and the 8x8 picture the network sees. Screenshots for a person to look at."""

import re

import pytest
from shots import open_page, screenshot, settle

pytestmark = pytest.mark.browser

# Strokes in the canvas's unit square (x right, y down), as a person draws them.
ONE = [(0.35, 0.25), (0.52, 0.12), (0.52, 0.88)]
SEVEN = [(0.25, 0.15), (0.72, 0.15), (0.42, 0.88)]


def draw(page, path, steps: int = 12) -> None:
    """One mouse stroke along `path` on the drawing canvas (fabric.js listens on its upper canvas)."""
    box = page.locator("canvas.upper-canvas").first.bounding_box()
    points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in path]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=steps)
    page.mouse.up()


def answer(page, previous: str | None = None) -> str:
    """The page's "It says N" heading once it shows (and differs from `previous`, when given)."""
    heading = page.locator("h2", has_text="It says")
    heading.first.wait_for(timeout=60_000)
    if previous is not None:
        page.wait_for_function("old => [...document.querySelectorAll('h2')].some(h => h.innerText.startsWith("
                               "'It says') && h.innerText !== old)", arg=previous, timeout=60_000)
    return heading.first.inner_text()


def test_without_a_digits_run_the_page_offers_the_lesson(server, page):
    open_page(page, server["url"] + "/draw", "Draw")
    page.get_by_text("No network trained on digits yet").wait_for(timeout=60_000)
    page.get_by_role("button", name=re.compile("Train the digits lesson")).wait_for(timeout=30_000)
    settle(page, 500)
    screenshot(page, "draw-no-run")


def test_draw_a_one_and_a_seven(server, served_run, page):
    open_page(page, server["url"] + "/draw", "Draw")
    page.locator("canvas.upper-canvas").first.wait_for(timeout=60_000)
    page.get_by_text("Draw a digit on the black square").wait_for(timeout=60_000)

    draw(page, ONE)
    first = answer(page)
    assert re.fullmatch(r"It says \d · \d+%", first), first
    caption = page.get_by_test_id("stImageCaption").filter(has_text="what the network sees: 8×8 pixels")
    caption.wait_for(timeout=30_000)
    assert page.get_by_test_id("stImage").count() >= 2          # the 8x8 picture and its heat map
    bars = page.get_by_test_id("stVegaLiteChart").first.locator('path[role="graphics-symbol"]')
    bars.first.wait_for(timeout=30_000)
    assert bars.count() == 5
    settle(page)
    screenshot(page, "draw-one")

    page.get_by_role("button", name=re.compile("Clear")).click()
    page.get_by_text("Draw a digit on the black square").wait_for(timeout=60_000)
    page.locator("canvas.upper-canvas").first.wait_for(timeout=60_000)
    draw(page, SEVEN)
    second = answer(page)
    assert re.fullmatch(r"It says \d · \d+%", second), second
    caption.wait_for(timeout=30_000)
    settle(page)
    screenshot(page, "draw-seven")
    print(f"drawn 1 read as: {first}; drawn 7 read as: {second}")
