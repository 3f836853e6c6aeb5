"""What a data audit found, as plain data: one `Finding` per problem, each naming the images it concerns,
and the `AuditReport` that holds them with JSON and CSV views.

    report.summary()        # {"exact_duplicate": 2, "label_issue": 5, ...}
    report.to_dict()        # what `cvdemo audit --json` prints
    report.csv_rows()       # one row per (finding, image), for a spreadsheet
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["KINDS", "Item", "Finding", "AuditReport"]

# Every kind of finding, in the order a report lists them, with the words a person reads.
KINDS: dict[str, str] = {
    "exact_duplicate": "exact duplicates (the same file or pixels)",
    "near_duplicate": "near duplicates (almost the same picture)",
    "label_issue": "likely wrong labels",
    "outlier": "outliers (unlike the rest of the data)",
    "unreadable": "unreadable files",
    "blank": "blank or near-constant images",
    "tiny": "tiny images",
    "aspect_ratio": "extreme aspect ratio",
    "grayscale": "grey images in a colour data set",
    "small_class": "classes with few images",
}
GROUP_KINDS = ("exact_duplicate", "near_duplicate")


@dataclass(frozen=True)
class Item:
    """One image of the data set: its split and position there (`index`, as the loaded split orders it),
    its label (class name) and where it is (`path`: a file of a folder, "member in archive.zip", or
    "cifar10 train #12" for a built-in set), and for folders and zips `file`, the path inside them."""
    split: str | None
    index: int | None
    label: str | None
    path: str
    file: str | None = None


@dataclass
class Finding:
    """One problem. `score` in [0, 1]: higher = more certainly a problem (findings sort on it).

    Duplicate groups carry `leakage` (the group spans train and val/test, so a test image was also
    trained on) and `conflicting` (its images carry different labels). `suggested` is the label the
    cross-validated linear head prefers for a likely wrong label."""
    kind: str
    score: float
    items: list[Item]
    detail: str
    leakage: bool = False
    conflicting: bool = False
    suggested: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": round(float(self.score), 4)}


@dataclass
class AuditReport:
    """Everything `cvdemo.audit.audit` found about one data set."""
    source: str
    model: str
    image_size: int
    near_threshold: float
    classes: list[str]
    counts: dict[str, list[int]]               # split -> images per class
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # checks that could not run, and why
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    images: int = 0
    bundle: Any = field(default=None, repr=False, compare=False)  # the loaded DataBundle, to draw the images
    split_settings: dict[str, Any] = field(default_factory=dict)  # seed, val_fraction, test_fraction, limit

    def by_kind(self, kind: str) -> list[Finding]:
        """The findings of one kind, highest score first."""
        return sorted((f for f in self.findings if f.kind == kind), key=lambda f: -f.score)

    def summary(self) -> dict[str, int]:
        """{kind: number of findings} for every kind (0 included), plus "leakage" and "conflicting" groups."""
        out = {k: sum(f.kind == k for f in self.findings) for k in KINDS}
        out["leakage"] = sum(f.leakage for f in self.findings)
        out["conflicting"] = sum(f.conflicting for f in self.findings)
        return out

    def flagged_paths(self) -> list[str]:
        """Paths a user may want to leave out of training: every image a finding names, except the first
        (kept) image of each duplicate group; sorted, each once."""
        paths: set[str] = set()
        for f in self.findings:
            items = f.items[1:] if f.kind in GROUP_KINDS else f.items
            paths.update(i.path for i in items)
        return sorted(paths)

    def exclusion(self, kinds: list[str] | tuple[str, ...]) -> list[str]:
        """A run config's `data.exclude` leaving out the files that findings of `kinds` name (the first file of
        each duplicate group stays): URL-encoded paths inside the folder or zip, sorted, each once."""
        from cvdemo.data.folder import exclude_entries

        files: set[str] = set()
        for f in self.findings:
            if f.kind in kinds:
                files.update(i.file for i in (f.items[1:] if f.kind in GROUP_KINDS else f.items) if i.file)
        return exclude_entries(files)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "model": self.model, "image_size": self.image_size, **self.split_settings,
                "near_threshold": self.near_threshold, "images": self.images, "classes": list(self.classes),
                "counts": self.counts, "summary": self.summary(), "notes": list(self.notes),
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "findings": [f.to_dict() for f in sorted(self.findings, key=_order)]}

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per image of each finding: finding number, kind, score, path, split, label and the rest."""
        rows = []
        for n, f in enumerate(sorted(self.findings, key=_order), start=1):
            for item in f.items or [Item(None, None, None, "")]:
                rows.append({"finding": n, "kind": f.kind, "score": round(float(f.score), 4), "path": item.path,
                             "split": item.split or "", "label": item.label or "", "suggested": f.suggested or "",
                             "leakage": f.leakage, "conflicting": f.conflicting, "detail": f.detail})
        return rows

    def to_csv(self) -> str:
        buf = io.StringIO()
        fields = ["finding", "kind", "score", "path", "split", "label", "suggested", "leakage", "conflicting",
                  "detail"]
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.csv_rows())
        return buf.getvalue()


def _order(f: Finding) -> tuple[int, float]:
    return list(KINDS).index(f.kind), -f.score
