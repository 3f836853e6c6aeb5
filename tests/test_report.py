"""`cvdemo report`: one self-contained HTML file with every section, real numbers, escaped names."""

import base64
import html
import io
import json
import re
from html.parser import HTMLParser

import pytest
from helpers import ODD_CLASSES, ODD_RUN_NAME, cvdemo
from PIL import Image

from cvdemo.evaluate import evaluate_run
from cvdemo.report import ReportOptions, build_report

SECTIONS = ("Did it learn?", "Headline metrics", "Training curves", "Configuration", "Confusion matrix", "Per-class results",
            "Most confidently wrong", "Embedding (PCA of the features)", "Why? Grad-CAM explanations")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of every element."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> Tags:
    p = Tags()
    p.feed(text)
    return p


def headings(tags: Tags, text: str) -> list[str]:
    return [m for m in re.findall(r"<h3>(.*?)</h3>", text)]


def assert_self_contained(text: str) -> list[Image.Image]:
    """No script, no external fetch of any kind; every image a PNG data URL that decodes. Returns the images."""
    tags = parse(text)
    assert not [t for t, _ in tags.tags if t in ("script", "link", "iframe", "object", "embed", "base")]
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text, re.I)
    assert "@import" not in text and "url(" not in text
    images = []
    for tag, attrs in tags.tags:
        if tag == "img":
            src = attrs["src"]
            assert src.startswith("data:image/png;base64,"), src[:60]
            images.append(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)  # no event handlers anywhere
            if name == "href":
                assert value.startswith("#"), value
    for im in images:
        im.load()  # a truncated or corrupt PNG raises here
    return images


def test_one_run_report_has_every_section_with_the_runs_real_numbers(digits_run):
    text = build_report([digits_run])
    assert text.startswith("<!DOCTYPE html>")
    found = headings(parse(text), text)
    assert found == list(SECTIONS)
    assert '<p class="health ok"><b>Healthy.</b>' in text  # the verdict on the run (cvdemo.health)
    images = assert_self_contained(text)
    # curves, confusion, gallery, embedding, and an input + an overlay per explained image
    assert len(images) == 4 + 2 * 3
    assert all(im.size[0] >= 100 and im.size[1] >= 100 for im in images)
    r = evaluate_run(digits_run)
    for figure in (f"{r.top1:.1%}", f"{r.topk[2]:.1%}", f"{r.top5:.1%}", f"{r.macro_f1:.3f}"):
        assert f'<div class="value">{figure}</div>' in text, figure
    for c in r.per_class:  # the per-class table lists every class with its own F1
        assert f"<td>{c['class']}</td><td>{c['precision']:.3f}</td><td>{c['recall']:.3f}</td><td>{c['f1']:.3f}</td>" \
            in text
    assert "Measured on the <b>test</b> split (360 images" in text
    summary = json.loads((digits_run / "summary.json").read_text())
    assert f"{summary['params_total']:,} parameters" in text
    assert "Comparison" not in text  # one run: no comparison table
    assert "<style>" in text and "@media print" in text


def test_names_from_users_are_escaped_everywhere(odd_names_run):
    text = build_report([odd_names_run], options=ReportOptions(explain=2, gallery=4))
    assert_self_contained(text)
    for raw in (*ODD_CLASSES, ODD_RUN_NAME):
        assert raw not in text
        assert html.escape(raw) in text, raw
    assert "<script" not in text.lower()
    assert "onerror=" not in text.replace("onerror=alert(2)&gt;", "")  # only ever as escaped text
    visible = "".join(parse(text).text)
    assert ODD_RUN_NAME in visible and all(c in visible for c in ODD_CLASSES)


def test_cli_compares_two_runs_with_a_table_and_overlaid_curves(digits_run, odd_names_run, tmp_path):
    out = tmp_path / "nested" / "report.html"
    result = cvdemo("report", str(digits_run), str(odd_names_run), "--out", str(out), "--explain", "1",
                    "--gallery", "4", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["out"] == str(out) and payload["bytes"] == out.stat().st_size
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "<h2>Comparison</h2>" in text and "Training curves, overlaid" in text
    table = text[text.index("<h2>Comparison</h2>"):text.index("Training curves, overlaid")]
    for run_dir in (digits_run, odd_names_run):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert f"{summary['test']['top1']:.1%}" in table and f"{summary['test']['top2']:.1%}" in table
        assert f"{summary['test']['macro_f1']:.3f}" in table and f"{summary['params_total']:,}" in table
    assert "data.source" not in table and "train.epochs" in table  # the setting that differs between the runs
    assert html.escape(ODD_RUN_NAME) in table
    assert text.count('<section class="run"') == 2
    assert 'href="#run-1"' in text and 'id="run-2"' in text


def test_cli_refuses_a_missing_run_in_one_sentence(tmp_path):
    result = cvdemo("report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html"))
    assert result.returncode == 2
    assert "no run at" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_a_run_without_a_checkpoint_still_reports_what_it_has(tmp_path):
    from cvdemo import runs
    from cvdemo.config import RunConfig

    run_dir = runs.create_run(tmp_path, RunConfig().replace(name="never trained"))
    runs.write_status(run_dir, "failed", "out of memory")
    text = build_report([run_dir])
    assert_self_contained(text)
    assert "never trained" in text and "out of memory" in text
    assert "Not available: run" in text  # the evaluation parts say why, the report is still written


def test_literal_choices_in_the_cli_match_the_core():
    from cvdemo import checkpoint, embed, evaluate, export
    from cvdemo.cli import _common as cli

    assert cli.FORMATS == export.FORMATS and cli.TSNE_BACKENDS == embed.TSNE_BACKENDS
    assert cli.SPLITS == evaluate.SPLITS and cli.CHECKPOINTS == checkpoint.CHECKPOINTS


@pytest.mark.parametrize("bad", ["--explain=-1", "--embed-limit=0"])
def test_cli_rejects_bad_counts(bad, digits_run, tmp_path):
    result = cvdemo("report", str(digits_run), "--out", str(tmp_path / "r.html"), bad)
    assert result.returncode == 2 and "must be at least" in result.stderr


@pytest.mark.slow
def test_cli_explains_each_image_with_two_methods_described_by_the_catalogue(digits_run, tmp_path):
    from cvdemo.explain import BY_NAME

    out = tmp_path / "two.html"
    result = cvdemo("report", str(digits_run), "--out", str(out), "--explain", "2", "--gallery", "2",
                    "--explain-methods", "gradcam,saliency")
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    images = assert_self_contained(text)
    assert headings(parse(text), text)[-1] == "Why? Grad-CAM and Saliency explanations"
    part = text[text.index("Why? Grad-CAM and Saliency"):]
    # curves, confusion, gallery, embedding, then per explained image: the input, a Grad-CAM and a saliency map
    assert len(images) == 4 + 2 * 3
    assert part.count("<figcaption>Grad-CAM</figcaption>") == part.count("<figcaption>Saliency</figcaption>") == 2
    for m in ("gradcam", "saliency"):
        assert html.escape(BY_NAME[m].description) in part, m
    gradcam, saliency = images[5], images[6]   # the first image's two overlays differ: two real methods
    assert gradcam.size == saliency.size and gradcam.tobytes() != saliency.tobytes()


def test_cli_refuses_an_unknown_explanation_method_in_one_sentence(digits_run, tmp_path):
    result = cvdemo("report", str(digits_run), "--out", str(tmp_path / "r.html"), "--explain-methods", "gradcam,magic")
    assert result.returncode == 2 and "unknown explanation method magic" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r.html").exists()
