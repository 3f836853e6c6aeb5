"""The whole document: style sheet, header, comparison, one section per run, footer; and writing it."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cvdemo import __version__, runs
from cvdemo.errors import CvdemoError
from cvdemo.evaluate import check_split
from cvdemo.report import _html as h
from cvdemo.report.comparison import comparison_table
from cvdemo.report.options import ReportOptions
from cvdemo.report.run_section import RunSection, run_label

CSS = """
:root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --accent: #2563eb; --soft: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1060px; margin: 0 auto; padding: 28px 32px 48px; }
header.top { border-bottom: 3px solid var(--accent); margin-bottom: 18px; padding-bottom: 10px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 22px; margin: 36px 0 4px; padding-top: 12px; border-top: 1px solid var(--line); }
header.top + section.run h2, header.top + h2 { border-top: none; margin-top: 8px; padding-top: 0; }
h3 { font-size: 17px; margin: 22px 0 8px; color: #1e3a8a; }
h4 { font-size: 14px; margin: 4px 0; text-transform: capitalize; color: var(--muted); }
p { margin: 6px 0; }
.muted, .note, figcaption { color: var(--muted); font-size: 13px; }
.facts { margin: 2px 0 8px; }
p.health { border-left: 5px solid #16a34a; background: #f0fdf4; padding: 8px 12px; border-radius: 4px; }
p.health.warning { border-color: #d97706; background: #fffbeb; }
p.health.error { border-color: #dc2626; background: #fef2f2; }
p.health.info { border-color: var(--line); background: var(--soft); }
nav.toc ol { margin: 4px 0; padding-left: 22px; columns: 2; }
a { color: var(--accent); text-decoration: none; }
.cards { display: grid; grid-template-columns: repeat(6, 1fr); gap: 10px; margin: 4px 0 6px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: var(--soft); }
.card .value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .label { font-size: 12px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
table.numbers th { white-space: nowrap; }
table.numbers td:not(:first-child), table.numbers th:not(:first-child) { text-align: right;
       font-variant-numeric: tabular-nums; }
table.numbers { width: auto; min-width: 60%; }
ul.config { columns: 3; column-gap: 28px; list-style: none; padding: 0; margin: 4px 0; font-size: 12.5px; }
ul.config li { break-inside: avoid; display: flex; justify-content: space-between; gap: 8px;
               border-bottom: 1px dotted var(--line); padding: 1px 2px; }
ul.config li span { color: var(--muted); }
ul.config li b { font-weight: 500; overflow-wrap: anywhere; text-align: right; }
ul.config li.changed { background: #fef9c3; }
ul.config li.changed b { font-weight: 700; }
ul.config li.group { font-weight: 700; text-transform: uppercase; font-size: 11px; letter-spacing: .05em;
                     color: #1e3a8a; border-bottom: 1px solid var(--line); padding-top: 6px; }
figure { margin: 6px 0 10px; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figure.narrow img, img.narrow { max-width: 640px; width: 100%; }
figcaption { margin-top: 4px; text-align: center; }
.gallery { display: flex; flex-wrap: wrap; gap: 14px; }
figure.pair { border: 1px solid var(--line); border-radius: 8px; padding: 8px; margin: 0; min-width: 318px;
  max-width: 100%; }
figure.pair > figcaption { text-align: left; overflow-wrap: anywhere; max-width: 630px; }
figure.pair div { display: flex; flex-wrap: wrap; gap: 6px; }
figure.pair figure.map { margin: 0; text-align: center; }
figure.pair figure.map figcaption { font-size: 12px; }
figure.pair img { width: 150px; height: 150px; object-fit: contain; margin: 0; }
img.pixelated { image-rendering: pixelated; }
code { background: var(--soft); padding: 0 3px; border-radius: 3px; font-size: 12px; }
footer { margin-top: 40px; border-top: 1px solid var(--line); padding-top: 8px; color: var(--muted); font-size: 12px; }
@page { size: A4; margin: 14mm; }
@media print {
  body { font-size: 11px; }
  main { max-width: none; padding: 0; }
  section.run { break-before: page; }
  h2 { border-top: none; margin-top: 0; }
  h3, h4 { break-after: avoid; }
  figure, table, .cards, .part > .note, tr { break-inside: avoid; }
  ul.config li.changed { background: none; }
  a { color: inherit; }
}
"""


def build_report(run_dirs: list[str | Path], *, title: str | None = None, options: ReportOptions | None = None,
                 on_run: Callable[[Path], None] | None = None) -> str:
    """One self-contained HTML document for these runs (see the module docstring).

    Several runs get a comparison table and overlaid curves first, then a section each.
    `on_run(run_dir)` is called as each run's section starts (for progress messages).
    """
    from cvdemo import plots

    options = options or ReportOptions()
    check_split(options.split)
    if not run_dirs:
        raise CvdemoError("a report needs at least one run")
    dirs = [runs.resolve_run(d) for d in run_dirs]
    if len({d.resolve() for d in dirs}) != len(dirs):
        raise CvdemoError("the same run is listed twice; give each run once")
    anchors = [f"run-{i + 1}" for i in range(len(dirs))]
    labels = [run_label(d) for d in dirs]
    if len(set(labels)) != len(labels):  # two runs of the same name: add their ids
        labels = [f"{lab} ({d.name[-4:]})" for lab, d in zip(labels, dirs)]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="cvdemo-report-") as tmp_name:
        tmp = Path(tmp_name)
        top = []
        if len(dirs) > 1:
            top.append("<h2>Comparison</h2>" + comparison_table(dirs, labels, anchors))
            curves = {lab: runs.read_metrics(d) for lab, d in zip(labels, dirs)}
            if any(any(m.get("kind") == "epoch" for m in ms) for ms in curves.values()):
                path = plots.curves_plot(curves, tmp / "comparison-curves.png")
                top.append("<h3>Training curves, overlaid</h3>"
                           + h.figure(path.read_bytes(), "training curves of every run",
                                     "Solid: training; dashed: validation; one colour per run."))
            toc = "".join(f'<li><a href="#{a}">{h.e(lab)}</a></li>' for a, lab in zip(anchors, labels))
            top.append(f'<nav class="toc"><h3>Runs in this report</h3><ol>{toc}</ol></nav>')
        sections = []
        for d, anchor, label in zip(dirs, anchors, labels):
            if on_run:
                on_run(d)
            section = RunSection(d, tmp, options, anchor)
            section.label = label
            sections.append(section.html())
    if title:
        heading = title
    elif len(dirs) == 1:
        config = runs.read_json_or_empty(dirs[0] / "config.json")
        data = h.data_name(config.get("data", {}).get("source", "?"))
        heading = f"Run report: {config.get('model', {}).get('name', '?')} on {data}"
    else:
        heading = f"Comparison of {len(dirs)} runs"
    date = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            # No script, no fetch: even if some text slipped through unescaped, the browser would run nothing.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "img-src data:; style-src 'unsafe-inline'\">"
            f"<title>{h.e(heading)}</title><style>{CSS}</style></head><body><main>"
            f'<header class="top"><h1>{h.e(heading)}</h1>'
            f'<p class="muted">Made by cvdemo {h.e(__version__)} on {h.e(date)} · metrics on the '
            f"{h.e(options.split)} split · {len(dirs)} run{'s' if len(dirs) > 1 else ''}</p></header>"
            + "".join(top) + "".join(sections)
            + "<footer>Every number here was computed by cvdemo from the run folders: predictions once per "
              "split, every metric from them. The file is self-contained: images are embedded, nothing is "
              "loaded from the network.</footer></main></body></html>\n")


def write_report(run_dirs: list[str | Path], out: str | Path, *, title: str | None = None,
                 options: ReportOptions | None = None, on_run: Callable[[Path], None] | None = None) -> Path:
    """build_report, written atomically to `out` (its folder is created)."""
    out = Path(out)
    text = build_report(run_dirs, title=title, options=options, on_run=on_run)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        runs.write_atomic(out, text.encode("utf-8"))
    except OSError as e:
        raise CvdemoError(f"cannot write the report to {out}: {e.strerror or e}") from None
    return out
