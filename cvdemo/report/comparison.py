"""The comparison table of several runs: their test figures side by side and the settings that differ."""

from __future__ import annotations

from pathlib import Path

from cvdemo import runs
from cvdemo.compare import comparison_rows
from cvdemo.report import _html as h


def comparison_table(run_dirs: list[Path], labels: list[str], anchors: list[str]) -> str:
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
    headers = ["run", "architecture", "data", *[h.e(k) for k in varied], "state", "top-1", "top-2", "top-5",
               "macro-F1", "parameters", "training time"]
    body = []
    for row, f, label, anchor in zip(rows, flat, labels, anchors):
        cells = [f'<a href="#{h.e(anchor)}">{h.e(label)}</a>', h.e(row.get("model")), h.e(h.data_name(row.get("data")))]
        cells += [h.e("–" if f.get(k) is None else f.get(k)) for k in varied]
        cells.append(h.e(row.get("status")))
        for m in metrics:
            text = h.num(row.get(m)) if m == "macro_f1" else h.pct(row.get(m))
            cells.append(f"<b>{text}</b>" if row.get(m) is not None and row.get(m) == best[m] else text)
        cells.append(f"{row['params']:,}" if row.get("params") is not None else "–")
        cells.append(f"{row['seconds']:.0f} s" if row.get("seconds") is not None else "–")
        body.append(cells)
    return (h.table(headers, body, "numbers")
            + h.note("Test-split figures, measured once at the end of each run with its best checkpoint "
                    "(chosen on validation); the best of each column in bold."
                    + (" Columns between data and state are the settings that differ between these runs."
                       if varied else "")))
