"""Screenshots the browser tests leave for a person to look at."""

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
