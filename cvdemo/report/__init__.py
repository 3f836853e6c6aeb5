"""A self-contained HTML report of one run, or a comparison of several.

    html_text = build_report([run_dir])                     # one HTML document as a string
    write_report([run_a, run_b], "report.html")             # with a comparison table and overlaid curves

The file needs nothing else: figures are PNG data URLs, the style sheet sits in a <style>
element, and there are no scripts, web fonts or links to fetch, so it opens offline, travels as
one attachment and prints (one run per printed page group). Every figure is drawn by
cvdemo.plots and every number comes from cvdemo.evaluate, cvdemo.embed, cvdemo.explain and
cvdemo.compare: this package only lays them out. Text that a user chose (run names, class names,
data paths, settings) is escaped with html.escape wherever it appears.

    document      build_report, write_report, the style sheet
    run_section   the section of one run (RunSection) and its label
    comparison    the table comparing several runs
    options       ReportOptions
    _html         escaping, images, tables and number formats
"""

from cvdemo.report.document import build_report, write_report
from cvdemo.report.options import ReportOptions
from cvdemo.report.run_section import run_label

__all__ = ["ReportOptions", "build_report", "run_label", "write_report"]
