"""The report in a real browser: it loads nothing but itself, runs no script, shows every figure, prints,
and leaves a full-page screenshot (and a PDF) for a person to look at."""

import re

import pytest
from shots import SCREENSHOTS, screenshot

from cvdemo.report import ReportOptions, write_report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report_file(digits_run, odd_names_run, tmp_path_factory):
    """A comparison of the digits run and the run whose class names are HTML."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    return write_report([digits_run, odd_names_run], out, options=ReportOptions(explain=3, gallery=16))


def test_the_report_makes_no_request_runs_no_script_and_shows_every_image(report_file, page):
    requests, dialogs, errors = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    url = report_file.as_uri()
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert requests == [url]                                   # the file itself, nothing else
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0
    assert dialogs == [] and errors == []                       # no alert() from a class name, no CSP complaint
    sizes = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) >= 2 * 10 and all(done and width > 0 for done, width in sizes)
    page.get_by_role("heading", name="Comparison", exact=True).wait_for()
    assert page.get_by_text("<script>alert(1)<", exact=False).count() >= 1   # shown as text
    assert page.locator("section.run").count() == 2
    screenshot(page, "report", max_height=20_000)


def test_the_report_prints_each_run_on_its_own_pages(report_file, page):
    page.goto(report_file.as_uri())
    page.wait_for_load_state("networkidle")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pdf = SCREENSHOTS / "report.pdf"
    page.emulate_media(media="print")
    page.pdf(path=str(pdf), format="A4", print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
    assert 3 <= pages <= 16, pages  # comparison, then each run from a fresh page
