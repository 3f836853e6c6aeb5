"""Screenshots the browser tests leave for a person to look at, and the waits before taking one."""

from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

# Streamlit scrolls inside its main container, not the document: measure that to capture a whole page.
_CONTENT_HEIGHT = """() => {
  const main = document.querySelector('[data-testid="stMain"]') || document.scrollingElement;
  return Math.max(main.scrollHeight, document.documentElement.scrollHeight);
}"""


def screenshot(page, name: str, max_height: int = 6000) -> Path:
    """The whole page (not just the window) as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size
    height = min(max(int(page.evaluate(_CONTENT_HEIGHT)), size["height"]), max_height)
    page.set_viewport_size({"width": size["width"], "height": height})
    try:
        page.wait_for_timeout(400)  # let charts re-layout to the new height
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


def heading(page, text: str, timeout: float = 60_000) -> None:
    """Wait until the page shows an h1 starting with `text` (the page has drawn its title)."""
    page.locator("h1", has_text=text).first.wait_for(timeout=timeout)


def open_page(page, url: str, title: str) -> None:
    page.goto(url)
    heading(page, title)


def settle(page, ms: int = 1000) -> None:
    """Let the page finish drawing (images, charts), with no tooltip or chart toolbar in the picture."""
    page.mouse.move(0, 0)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(ms)


def start_lesson(page, card: str) -> None:
    """Press Start on Home's lesson card titled `card`, once the whole page is drawn. The Start of a named
    card, not the first Start on the page: a click while Home was still drawing once landed on another
    lesson's button."""
    page.get_by_text("Recent runs").wait_for(timeout=60_000)
    settle(page)
    box = page.get_by_test_id("stVerticalBlock").filter(
        has=page.locator("h4", has_text=card)).filter(has=page.get_by_role("button", name="Start")).last
    box.get_by_role("button", name="Start", exact=True).click()
