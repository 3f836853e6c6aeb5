"""The audit as one self-contained HTML page: the summary, then each kind of finding with its images inline
(small PNG thumbnails as data URLs), duplicate groups side by side with their labels and splits.

    Path("audit.html").write_text(audit_html(report, thumbnail=image_of(data)))
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from cvdemo.audit.findings import KINDS, AuditReport, Item
from cvdemo.report._html import e, figure, note, pil_png, table

__all__ = ["audit_html", "THUMB_SIDE", "MAX_PER_KIND"]

THUMB_SIDE = 72       # pixels, the longer side of each thumbnail
MAX_PER_KIND = 60     # findings drawn per kind (all of them are in the JSON and the CSV)

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}
.finding{display:flex;gap:.6em;align-items:flex-start;margin:.6em 0;padding:.4em;border:1px solid #eee;border-radius:6px}
.finding.warn{border-color:#e0a0a0;background:#fff6f6}figure{margin:0;text-align:center;font-size:.8em}
figure img{image-rendering:pixelated;border:1px solid #ccc}.detail{font-size:.9em;max-width:520px}
.note{color:#666;font-size:.9em}"""


def audit_html(report: AuditReport, thumbnail: Callable[[Item], Image.Image | None] | None = None) -> str:
    """The whole page. `thumbnail(item)`: the item's picture (None when it cannot be drawn); None: no images."""
    s = report.summary()
    rows = [[e(KINDS[k]), str(s[k])] for k in KINDS]
    rows += [["duplicate groups across train and test (leakage)", str(s["leakage"])],
             ["duplicate groups with different labels", str(s["conflicting"])]]
    parts = [f"<h1>Data check: {e(report.source)}</h1>",
             note(f"{report.images:,} images, {len(report.classes)} classes; features of the pretrained "
                  f"{e(report.model)} at {report.image_size}px; near duplicates from cosine similarity "
                  f"{report.near_threshold:g}. " + " ".join(e(n) for n in report.notes)),
             table(["issue", "found"], rows), _balance(report)]
    for kind, words in KINDS.items():
        found = report.by_kind(kind)
        if not found:
            continue
        more = f" (the {MAX_PER_KIND} highest scores of {len(found)})" if len(found) > MAX_PER_KIND else ""
        parts.append(f"<h2>{e(words[:1].upper() + words[1:])}: {len(found)}{more}</h2>")
        for f in found[:MAX_PER_KIND]:
            pictures = "".join(_figure(item, thumbnail) for item in f.items)
            warn = " warn" if f.leakage or f.conflicting else ""
            parts.append(f'<div class="finding{warn}">{pictures}<div class="detail">score {f.score:.3f}: '
                         f"{e(f.detail)}</div></div>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Data check: {e(report.source)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def _balance(report: AuditReport) -> str:
    splits = [s for s in ("train", "val", "test") if s in report.counts]
    rows = [[e(c)] + [str(report.counts[s][i]) for s in splits] for i, c in enumerate(report.classes)]
    return "<h2>Images per class</h2>" + table(["class", *splits], rows)


def _figure(item: Item, thumbnail: Callable[[Item], Image.Image | None] | None) -> str:
    caption = e(f"{item.label or '?'} · {item.split or '?'}") + "<br>" + e(item.path.rsplit("/", 1)[-1][-28:])
    picture = thumbnail(item) if thumbnail is not None else None
    if picture is None:
        return f"<figure>{caption}</figure>"
    picture = picture.copy()
    picture.thumbnail((THUMB_SIDE, THUMB_SIDE))
    if max(picture.size) < THUMB_SIDE // 2:  # tiny images drawn bigger, pixels kept sharp
        scale = max(1, (THUMB_SIDE // 2) // max(picture.size))
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    return figure(pil_png(picture), item.path, caption)
