"""The small HTML helpers every part of a report is written with: escaping, images, tables, numbers."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from typing import TYPE_CHECKING

from cvdemo import runs
from cvdemo.errors import CvdemoError

if TYPE_CHECKING:
    from PIL import Image


def e(value: object) -> str:
    """Any value as HTML text, escaped (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(png: bytes, alt: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} src="{data_url(png)}" alt="{e(alt)}">'


def figure(png: bytes, alt: str, caption: str = "", css: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{img(png, alt, css)}{cap}</figure>"


def pil_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def pct(v: float | None) -> str:
    return "–" if v is None or v != v else f"{v:.1%}"


def num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None or v != v else format(v, fmt)


def note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def table(headers: list[str], rows: list[list[str]], css: str = "") -> str:
    """An HTML table; headers and cells must already be escaped (cells may hold markup)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def part(title: str, build: Callable[[], str]) -> str:
    """A titled part of a run's section; a part that cannot be made says why instead of failing the report."""
    try:
        body = build()
    except CvdemoError as error:
        body = note(f"Not available: {e(error)}")
    return f'<div class="part"><h3>{e(title)}</h3>{body}</div>'


def data_name(source: object) -> str:
    """A data source as a short name: built-in names as they are, an uploaded file by the name its owner
    gave it, another folder or zip by its last part (runs.data_display_name): never a server path."""
    text = str(source).rstrip("/\\") or str(source)
    return runs.data_display_name(text)
