"""Issue 18, item 11 in a real browser: the Runs page exports a run for use elsewhere, and says when a run
can be resumed."""

from shots import heading, screenshot, settle


def test_runs_page_exports_a_run_and_offers_its_download(server, page, served_run):
    page.goto(server["url"] + "/compare")
    heading(page, "Runs")
    page.get_by_text("Resume, export, download or delete a run").wait_for(timeout=60_000)
    page.get_by_text("Resume is for runs that were cancelled").wait_for()   # a finished run has nothing to resume
    page.get_by_role("button", name="Export for use elsewhere (TorchScript)").click()
    download = page.get_by_role("button", name="Download the export (zip)")
    download.wait_for(timeout=120_000)
    page.get_by_text("model.pt, model_card.json and model_card.md").wait_for()
    download.scroll_into_view_if_needed()
    settle(page)
    with page.expect_download() as got:
        download.click()
    assert got.value.suggested_filename == f"{served_run.name}-torchscript.zip"
    screenshot(page, "runs-export")
