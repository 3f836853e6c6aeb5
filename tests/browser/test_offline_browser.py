"""The app works offline: every page, opened directly and through the sidebar, with a trained run to
draw, asks nothing of any server but the app's own (127.0.0.1). Fonts, icons and the favicon come
from the local server or are inline."""

from urllib.parse import urlparse

import pytest
from shots import SCREENSHOTS

pytestmark = pytest.mark.browser

LOCAL = {"127.0.0.1", "localhost"}
# Sidebar link -> the page's heading and its address.
PAGES = {"Home": ("image classification playground", ""), "Data": ("Data", "data"), "Model": ("Model", "model"),
         "Train": ("Train", "train"), "Evaluate": ("Evaluate", "evaluate"), "Embeddings": ("Embeddings", "embeddings"),
         "Explain": ("Explain", "explain"), "Runs": ("Runs", "compare"), "Classify": ("Classify", "classify"),
         "Draw": ("Draw", "draw")}


@pytest.fixture
def outside(page):
    """Every request (and web socket) the page makes to a host other than this machine, as URLs;
    each is refused, so a test on a machine with internet behaves as one without."""
    seen: list[str] = []

    def route(r):
        if urlparse(r.request.url).hostname in LOCAL:
            r.continue_()
        else:
            seen.append(r.request.url)
            r.abort()

    def note(url: str) -> None:
        if urlparse(url).scheme in ("http", "https", "ws", "wss") and urlparse(url).hostname not in LOCAL:
            seen.append(url)

    page.context.route("**/*", route)
    page.on("request", lambda request: note(request.url))
    page.on("websocket", lambda ws: note(ws.url))
    return seen


def wait_drawn(page, heading: str) -> None:
    page.locator("h1", has_text=heading).first.wait_for(timeout=120_000)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)   # late requests: icons, fonts, chart assets


def icon_links(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('link[rel~=\"icon\"]')].map(l => l.href)")


def test_every_page_makes_no_request_beyond_this_machine(server, served_run, page, outside):
    for name, (heading, path) in PAGES.items():        # each page opened by its address: a fresh load
        page.goto(f"{server['url']}/{path}")
        wait_drawn(page, heading)
        assert all(href.startswith("data:") or urlparse(href).hostname in LOCAL for href in icon_links(page)), \
            (name, icon_links(page))
    page.goto(server["url"])
    wait_drawn(page, PAGES["Home"][0])
    for name, (heading, _) in PAGES.items():           # and through the sidebar, as a user goes
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
        wait_drawn(page, heading)
        assert all(href.startswith("data:") or urlparse(href).hostname in LOCAL for href in icon_links(page))
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Embeddings", exact=True).click()
    wait_drawn(page, "Embeddings")
    page.get_by_test_id("stButtonGroup").get_by_text("3-D", exact=True).click()   # plotly's 3-D view too
    page.get_by_test_id("stPlotlyChart").wait_for(timeout=120_000)
    wait_drawn(page, "Embeddings")
    assert outside == [], outside


def test_the_favicon_is_the_apps_own_and_inline(server, page, outside):
    page.goto(server["url"])
    wait_drawn(page, PAGES["Home"][0])
    icons = icon_links(page)
    assert icons and all(href.startswith("data:image/svg+xml") for href in icons), icons
    assert outside == []
    page.set_viewport_size({"width": 480, "height": 240})   # the icon, large and at tab size, to look at
    page.set_content(f'<body style="margin:40px;font:16px sans-serif"><img src="{icons[0]}" width="128"> '
                     f'<img src="{icons[0]}" width="32"> <img src="{icons[0]}" width="16"></body>')
    page.locator("img").first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "favicon.png"))
    assert outside == []


def test_the_draw_canvas_loads_from_the_local_wheel(server, served_run, page, outside):
    """streamlit-drawable-canvas's frontend (fabric.js) comes from the installed wheel, and drawing on it asks
    no outside server for anything either."""
    page.goto(f"{server['url']}/draw")
    wait_drawn(page, "Draw")
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for(timeout=60_000)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.85, steps=10)
    page.mouse.up()
    page.locator("h2", has_text="It says").first.wait_for(timeout=60_000)
    wait_drawn(page, "Draw")
    assert outside == [], outside
