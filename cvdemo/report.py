"""A self-contained HTML report of one run, or a comparison of several.

    html_text = build_report([run_dir])                     # one HTML document as a string
    write_report([run_a, run_b], "report.html")             # with a comparison table and overlaid curves

The file needs nothing else: figures are PNG data URLs, the style sheet sits in a <style>
element, and there are no scripts, web fonts or links to fetch, so it opens offline, travels as
one attachment and prints (one run per printed page group). Every figure is drawn by
cvdemo.plots and every number comes from cvdemo.evaluate, cvdemo.embed, cvdemo.explain and
cvdemo.compare: this module only lays them out. Text that a user chose (run names, class names,
data paths, settings) is escaped with html.escape wherever it appears.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvdemo import __version__, runs
from cvdemo.compare import comparison_rows
from cvdemo.config import RunConfig
from cvdemo.errors import CvdemoError
from cvdemo.evaluate import Evaluation, check_split, evaluate_run

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class ReportOptions:
    split: str = "test"            # the split every metric and picture of a run is measured on
    checkpoint: str = "best"       # "best" (chosen on validation) or "last"
    explain: int = 3               # images with a Grad-CAM overlay per run (0 = none)
    gallery: int = 16              # most-confidently-wrong images per run
    embed_limit: int = 1000        # at most this many points in the PCA plot (stratified)
    device: str = "auto"


def _e(value: Any) -> str:
    """Any value as HTML text, escaped (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} src="{_data_url(png)}" alt="{_e(alt)}">'


def _figure(png: bytes, alt: str, caption: str = "", css: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{_img(png, alt, css)}{cap}</figure>"


def _pil_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _pct(v: float | None) -> str:
    return "–" if v is None or v != v else f"{v:.1%}"


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None or v != v else format(v, fmt)


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _table(headers: list[str], rows: list[list[str]], css: str = "") -> str:
    """An HTML table; headers and cells must already be escaped (cells may hold markup)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _part(title: str, build: Callable[[], str]) -> str:
    """A titled part of a run's section; a part that cannot be made says why instead of failing the report."""
    try:
        body = build()
    except CvdemoError as e:
        body = _note(f"Not available: {_e(e)}")
    return f'<div class="part"><h3>{_e(title)}</h3>{body}</div>'


def _data_name(source: Any) -> str:
    """A data source as a short name: built-in names as they are, a folder or zip by its last part."""
    text = str(source)
    return Path(text.rstrip("/\\")).name or text if ("/" in text or "\\" in text) else text


def run_label(run_dir: Path, config: dict[str, Any] | None = None) -> str:
    """The run's own name when it has one, else its id."""
    config = config if config is not None else runs.read_json_or_empty(Path(run_dir) / "config.json")
    return config.get("name") or Path(run_dir).name


# -- one run -------------------------------------------------------------------------------------

class _RunReport:
    """Builds the section of one run; figures are drawn into a temporary folder and inlined."""

    def __init__(self, run_dir: Path, tmp: Path, options: ReportOptions, anchor: str):
        self.run_dir = Path(run_dir)
        self.tmp = tmp
        self.options = options
        self.anchor = anchor
        self.config = runs.read_json_or_empty(self.run_dir / "config.json")
        self.summary = runs.read_json_or_empty(self.run_dir / "summary.json")
        self.status = runs.read_status(self.run_dir)
        self.metrics = runs.read_metrics(self.run_dir)
        self.label = run_label(self.run_dir, self.config)
        self._evaluation: Evaluation | None = None
        self._figures: dict[str, Path] | None = None

    def png(self, name: str) -> Path:
        return self.tmp / f"{self.anchor}-{name}.png"

    def evaluation(self) -> Evaluation:
        if self._evaluation is None:
            self._evaluation = evaluate_run(self.run_dir, self.options.split, self.options.checkpoint,
                                            most_wrong=self.options.gallery, device=self.options.device)
        return self._evaluation

    def html(self) -> str:
        model = self.config.get("model", {})
        data = self.config.get("data", {})
        facts = [f"<b>{_e(model.get('name', '?'))}</b>{' (ImageNet-pretrained)' if model.get('pretrained') else ''}"
                 f" on <b>{_e(_data_name(data.get('source', '?')))}</b>",
                 f"state: {_e(self.status.get('state', '?'))}"
                 + (f" ({_e(self.status.get('message'))})" if self.status.get("message") else "")]
        if self.summary.get("epochs") is not None:
            facts.append(f"{_e(self.summary['epochs'])} epochs in {_e(round(self.summary.get('seconds', 0)))} s "
                         f"on {_e(self.summary.get('device', '?'))}")
        if self.summary.get("params_total") is not None:
            facts.append(f"{self.summary['params_total']:,} parameters")
        parts = [
            _part("Headline metrics", self.headline),
            _part("Training curves", self.curves),
            _part("Configuration", self.configuration),
            _part("Confusion matrix", self.confusion),
            _part("Per-class results", self.per_class),
            _part("Most confidently wrong", self.most_wrong),
            _part("Embedding (PCA of the features)", self.embedding),
        ]
        if self.options.explain > 0:
            parts.append(_part("Why? Grad-CAM explanations", self.explanations))
        return (f'<section class="run" id="{_e(self.anchor)}"><h2>{_e(self.label)}</h2>'
                f'<p class="facts">{" · ".join(facts)}'
                + (f'<br><span class="muted">run {_e(self.run_dir.name)}</span>' if self.label != self.run_dir.name
                   else "") + "</p>"
                + "".join(parts) + "</section>")

    def headline(self) -> str:
        r = self.evaluation()
        p = r.predictions
        cards = [("top-1", _pct(r.top1)), ("top-2", _pct(r.topk.get(2))), ("top-5", _pct(r.top5)),
                 ("macro-F1", _num(r.macro_f1)), ("loss", _num(r.loss)), ("calibration error", _num(r.ece))]
        boxes = "".join(f'<div class="card"><div class="value">{v}</div><div class="label">{_e(k)}</div></div>'
                        for k, v in cards)
        best = "chosen on the validation split" if p.checkpoint == "best" else "after the last epoch"
        held_out = " — images no training step and no checkpoint choice ever saw" if p.split == "test" else ""
        return (f'<div class="cards">{boxes}</div>'
                + _note(f"Measured on the <b>{_e(p.split)}</b> split ({r.n} images{held_out}) with the "
                        f"{_e(p.checkpoint)} checkpoint ({best}). Calibration error: ECE over 15 bins."))

    def curves(self) -> str:
        from cvdemo import plots

        if not any(m.get("kind") == "epoch" for m in self.metrics):
            return _note("No epoch finished, so there are no curves.")
        path = plots.curves_plot({self.label: self.metrics}, self.png("curves"))
        return _figure(path.read_bytes(), "training curves",
                       "Training loss per logged step, validation loss and accuracies per epoch.")

    def configuration(self) -> str:
        defaults = RunConfig().to_dict()
        groups = []
        for section in ("data", "model", "train"):
            items = []
            for key, value in self.config.get(section, {}).items():
                default = defaults.get(section, {}).get(key)
                changed = (list(default) if isinstance(default, tuple) else default) != value
                if isinstance(value, list):
                    value = ", ".join(map(str, value))
                text = "–" if value in (None, "") else value
                css = ' class="changed"' if changed else ""
                items.append(f"<li{css}><span>{_e(key.replace('_', ' '))}</span> <b>{_e(text)}</b></li>")
            groups.append(f"<li class=\"group\">{_e(section)}</li>{''.join(items)}")
        return (f'<ul class="config">{"".join(groups)}</ul>'
                + _note("Highlighted settings differ from cvdemo's defaults. This run's config.json trains it "
                        "again: <code>cvdemo train --config config.json</code>."))

    def figures(self) -> dict[str, Path]:
        """The evaluation figures `cvdemo evaluate --plots` draws (confusion, per_class, reliability, most_wrong)."""
        if self._figures is None:
            from cvdemo.plots import write_evaluation_plots

            paths = write_evaluation_plots(self.evaluation(), self.tmp / f"{self.anchor}-evaluation")
            self._figures = {p.stem: p for p in paths}
        return self._figures

    def confusion(self) -> str:
        return _figure(self.figures()["confusion"].read_bytes(), "confusion matrix",
                       "Rows: the true class; columns: the predicted class. Shading: the share of the true "
                       "class's images; numbers: image counts.", "narrow")

    def per_class(self) -> str:
        r = self.evaluation()
        rows = [[_e(c["class"]), _num(c["precision"]), _num(c["recall"]), _num(c["f1"]), _e(c["support"])]
                for c in r.per_class]
        return (_table(["class", "precision", "recall (per-class accuracy)", "F1", "images"], rows, "numbers")
                + _note(f"Macro-F1 {_num(r.macro_f1)} (the mean of the F1 column), weighted F1 "
                        f"{_num(r.weighted_f1)}."))

    def most_wrong(self) -> str:
        r = self.evaluation()
        if not r.most_wrong:
            return _note(f"No image of the {_e(r.predictions.split)} split is misclassified.")
        return _figure(self.figures()["most_wrong"].read_bytes(), "most confidently wrong images",
                       f"The {len(r.most_wrong)} misclassified images the model was surest about: sample number, "
                       "true class, predicted class and the predicted class's probability.")

    def embedding(self) -> str:
        from cvdemo import plots
        from cvdemo.embed import embed_run

        self.evaluation()  # stores the features embed_run reuses
        emb = embed_run(self.run_dir, method="pca", dims=2, split=self.options.split,
                        limit=self.options.embed_limit, checkpoint=self.options.checkpoint,
                        device=self.options.device)
        path = plots.embedding_plot(emb, self.png("embedding"))
        variance = " and ".join(f"{v:.1%}" for v in emb.explained_variance or [])
        return _figure(path.read_bytes(), "PCA of the penultimate-layer features",
                       f"{len(emb.labels)} images of the {_e(emb.split)} split, their {emb.features}-dimensional "
                       f"penultimate-layer features projected on the two principal axes ({variance} of the "
                       f"variance). A 5-nearest-neighbour vote in this picture is right for {_pct(emb.knn5)} of "
                       "them.", "narrow")

    def explanation_picks(self) -> list[int]:
        """Sample indices to explain: the surest correct image of a few different classes, then the surest
        mistake."""
        import numpy as np

        r = self.evaluation()
        p = r.predictions
        wanted = self.options.explain
        mistakes = [w["index"] for w in r.most_wrong[:1]] if wanted > 1 else []
        conf = p.probs.max(axis=1)
        correct = np.flatnonzero(p.preds == p.labels)
        picks: list[int] = []
        seen: set[int] = set()
        for i in correct[np.argsort(-conf[correct], kind="stable")]:
            if len(picks) >= wanted - len(mistakes):
                break
            if int(p.labels[i]) not in seen:
                seen.add(int(p.labels[i]))
                picks.append(int(i))
        return picks + mistakes

    def explanations(self) -> str:
        from PIL import Image

        from cvdemo.explain import explain_image, model_view, overlay
        from cvdemo.plots import display_size
        from cvdemo.predict import Classifier

        r = self.evaluation()
        picks = self.explanation_picks()
        if not picks:
            return _note("There are no images to explain.")
        clf = Classifier.from_run(self.run_dir, r.predictions.checkpoint)
        arch = self.config.get("model", {}).get("name")
        names = r.classes
        figures = []
        for index, image in zip(picks, r.images(picks)):
            a = image.numpy()
            pil = Image.fromarray(a[0], "L") if a.shape[0] == 1 else Image.fromarray(a.transpose(1, 2, 0), "RGB")
            exp = explain_image(clf, pil, "gradcam", arch=arch)
            view = display_size(model_view(clf, pil), low=192, high=256)
            true = names[int(r.predictions.labels[index])]
            predicted = names[exp.target]
            verdict = "right" if true == predicted else "wrong"
            figures.append(
                f'<figure class="pair"><div>{_img(_pil_png(view), "input image", "pixelated")}'
                f'{_img(_pil_png(overlay(view, exp.map, alpha=0.5)), "Grad-CAM overlay")}</div>'
                f"<figcaption>#{index}: true <b>{_e(true)}</b>, predicted <b>{_e(predicted)}</b> "
                f"(p = {exp.target_prob:.1%}, {verdict})</figcaption></figure>")
        return (f'<div class="gallery">{"".join(figures)}</div>'
                + _note("Grad-CAM at the architecture's last feature map, for the predicted class: red regions "
                        "raised that class's score the most."))


# -- several runs --------------------------------------------------------------------------------

def _comparison(run_dirs: list[Path], labels: list[str], anchors: list[str]) -> str:
    """The reports' table (run/architecture × test top-1, top-2, top-5, macro-F1, parameters, time), the
    settings that differ between the runs, best values in bold."""
    rows = comparison_rows(run_dirs)
    configs = [runs.read_json_or_empty(d / "config.json") for d in run_dirs]
    flat = [{f"{s}.{k}": (", ".join(map(str, v)) if isinstance(v, list) else v)
             for s in ("data", "model", "train") for k, v in c.get(s, {}).items()} for c in configs]
    shown = {"model.name", "data.source"}
    varied = [k for k in (flat[0] if flat else {}) if k not in shown and len({repr(f.get(k)) for f in flat}) > 1]
    metrics = ("top1", "top2", "top5", "macro_f1")
    best = {m: max((row[m] for row in rows if row.get(m) is not None), default=None) for m in metrics}
    headers = ["run", "architecture", "data", *[_e(k) for k in varied], "state", "top-1", "top-2", "top-5",
               "macro-F1", "parameters", "training time"]
    body = []
    for row, f, label, anchor in zip(rows, flat, labels, anchors):
        cells = [f'<a href="#{_e(anchor)}">{_e(label)}</a>', _e(row.get("model")), _e(_data_name(row.get("data")))]
        cells += [_e("–" if f.get(k) is None else f.get(k)) for k in varied]
        cells.append(_e(row.get("status")))
        for m in metrics:
            text = _num(row.get(m)) if m == "macro_f1" else _pct(row.get(m))
            cells.append(f"<b>{text}</b>" if row.get(m) is not None and row.get(m) == best[m] else text)
        cells.append(f"{row['params']:,}" if row.get("params") is not None else "–")
        cells.append(f"{row['seconds']:.0f} s" if row.get("seconds") is not None else "–")
        body.append(cells)
    return (_table(headers, body, "numbers")
            + _note("Test-split figures, measured once at the end of each run with its best checkpoint "
                    "(chosen on validation); the best of each column in bold."
                    + (" Columns between data and state are the settings that differ between these runs."
                       if varied else "")))


# -- the document --------------------------------------------------------------------------------

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
figure.pair { border: 1px solid var(--line); border-radius: 8px; padding: 8px; margin: 0; width: 318px; }
figure.pair figcaption { text-align: left; overflow-wrap: anywhere; }
figure.pair div { display: flex; gap: 6px; }
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
            top.append("<h2>Comparison</h2>" + _comparison(dirs, labels, anchors))
            curves = {lab: runs.read_metrics(d) for lab, d in zip(labels, dirs)}
            if any(any(m.get("kind") == "epoch" for m in ms) for ms in curves.values()):
                path = plots.curves_plot(curves, tmp / "comparison-curves.png")
                top.append("<h3>Training curves, overlaid</h3>"
                           + _figure(path.read_bytes(), "training curves of every run",
                                     "Solid: training; dashed: validation; one colour per run."))
            toc = "".join(f'<li><a href="#{a}">{_e(lab)}</a></li>' for a, lab in zip(anchors, labels))
            top.append(f'<nav class="toc"><h3>Runs in this report</h3><ol>{toc}</ol></nav>')
        sections = []
        for d, anchor, label in zip(dirs, anchors, labels):
            if on_run:
                on_run(d)
            section = _RunReport(d, tmp, options, anchor)
            section.label = label
            sections.append(section.html())
    if title:
        heading = title
    elif len(dirs) == 1:
        config = runs.read_json_or_empty(dirs[0] / "config.json")
        data = _data_name(config.get("data", {}).get("source", "?"))
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
            f"<title>{_e(heading)}</title><style>{CSS}</style></head><body><main>"
            f'<header class="top"><h1>{_e(heading)}</h1>'
            f'<p class="muted">Made by cvdemo {_e(__version__)} on {_e(date)} · metrics on the '
            f"{_e(options.split)} split · {len(dirs)} run{'s' if len(dirs) > 1 else ''}</p></header>"
            + "".join(top) + "".join(sections)
            + "<footer>Every number here was computed by cvdemo from the run folders: predictions once per "
              "split, every metric from them. The file is self-contained: images are embedded, nothing is "
              "loaded from the network.</footer></main></body></html>\n")


def write_report(run_dirs: list[str | Path], out: str | Path, **kwargs: Any) -> Path:
    """build_report, written atomically to `out` (its folder is created)."""
    out = Path(out)
    text = build_report(run_dirs, **kwargs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        runs.write_atomic(out, text.encode("utf-8"))
    except OSError as e:
        raise CvdemoError(f"cannot write the report to {out}: {e.strerror or e}") from None
    return out
