"""The Data page's "Check this data" in a real browser, on a folder with planted problems."""

from audit_data import planted_folder
from shots import screenshot, settle


def test_check_this_data_on_a_folder_with_planted_problems(server, page, tmp_path):
    planted = planted_folder(tmp_path)
    page.goto(server["url"] + "/data")
    page.locator("h1", has_text="Data").first.wait_for(timeout=60_000)
    page.get_by_text("A folder on this computer", exact=True).click()
    box = page.get_by_placeholder("/home/teacher/photos")
    box.fill(str(planted.root))
    box.press("Enter")
    button = page.get_by_role("button", name="Check this data")
    button.wait_for(timeout=90_000)
    button.click()
    tab = page.get_by_role("tab", name="exact duplicates (1)")
    tab.wait_for(timeout=300_000)
    settle(page, 1500)  # the download button is drawn a moment after the tabs
    body = page.locator("body").inner_text()
    assert "Traceback" not in body
    assert "will look better than it is" in body                     # the leakage warning
    assert "labelled differently (discs, squares)" in body           # the twin, in the first tab
    assert "Download the findings (CSV)" in body, body[-3000:]
    page.get_by_role("tab", name="likely wrong labels", exact=False).click()
    page.get_by_text("swapped_0.png", exact=False).first.wait_for(timeout=30_000)
    page.get_by_role("tab", name="exact duplicates (1)").click()
    page.get_by_text("Leave these 4 files out of training").click()
    page.get_by_text("Your files stay where they are").wait_for(timeout=60_000)
    assert (planted.root / "test/squares/twin.png").exists()
    page.get_by_role("heading", name="Check this data").scroll_into_view_if_needed()
    settle(page, 1500)
    screenshot(page, "data-check")
