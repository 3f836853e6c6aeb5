"""What a data check found that changes how a run's test number reads, remembered beside the runs:
duplicate groups that cross train and held-out splits (leakage) or carry different labels.

    remember(report)                         # after the Data page's check: <runs>/.audits/<key>.json
    run_data_warning(run_dir)                # on the Evaluate page: a sentence, or None

A record is keyed by the data source and the split settings (a flat folder's splits follow the seed and
fractions); a run that left some of those files out (data.exclude) is counted without them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.audit.findings import GROUP_KINDS, AuditReport
from cvdemo.config import RunConfig

__all__ = ["AUDITS", "record_path", "remember", "known_problems", "data_warning", "run_data_warning"]

AUDITS = ".audits"  # folder under the runs root


def record_path(source: str, seed: int, val_fraction: float, test_fraction: float, root: Path | None = None) -> Path:
    key = json.dumps([str(source), int(seed), float(val_fraction), float(test_fraction)])
    name = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(root if root is not None else runs.default_root()) / AUDITS / f"{name}.json"


def remember(report: AuditReport, root: Path | None = None) -> Path:
    """Write the report's leaking or conflicting duplicate groups (files, splits, labels) for `known_problems`."""
    s = report.split_settings
    path = record_path(report.source, s.get("seed", 0), s.get("val_fraction", 0.1), s.get("test_fraction", 0.2), root)
    groups = [{"kind": f.kind, "items": [{"split": i.split, "label": i.label, "file": i.file, "path": i.path}
                                         for i in f.items]}
              for f in report.findings if f.kind in GROUP_KINDS and (f.leakage or f.conflicting)]
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json(path, {"source": report.source, **s, "groups": groups})
    return path


def known_problems(config: RunConfig, root: Path | None = None) -> dict[str, int] | None:
    """{"leakage": groups still across train and val/test, "conflicting": groups still with two labels} for the
    run's data after its exclusions, or None when its data was never checked with these split settings."""
    from cvdemo.data.folder import excluded_names

    d = config.data
    path = record_path(d.source, config.train.seed, d.val_fraction, d.test_fraction, root)
    try:
        record: dict[str, Any] = runs.read_json(path)
    except (OSError, ValueError):
        return None
    left_out = excluded_names(d.exclude)
    leakage = conflicting = 0
    for group in record.get("groups", []):
        kept = [i for i in group.get("items", []) if not (i.get("file") and i["file"] in left_out)]
        splits = {i.get("split") for i in kept}
        leakage += int("train" in splits and bool(splits & {"val", "test"}))
        conflicting += int(len(kept) > 1 and len({i.get("label") for i in kept}) > 1)
    return {"leakage": leakage, "conflicting": conflicting}


def data_warning(config: RunConfig, root: Path | None = None) -> str | None:
    """One sentence when the run's data is known (from a data check) to leak or to carry conflicting labels."""
    found = known_problems(config, root)
    if not found or not (found["leakage"] or found["conflicting"]):
        return None
    parts = []
    if found["leakage"]:
        parts.append(f"{found['leakage']} group{'s' if found['leakage'] > 1 else ''} of duplicate images "
                     "sit in both the training and the held-out images")
    if found["conflicting"]:
        parts.append(f"{found['conflicting']} group{'s' if found['conflicting'] > 1 else ''} of duplicates "
                     "carry different labels")
    return (f"The data check on the Data page found that {' and '.join(parts)}: the test number may be "
            "optimistic (leave those files out of training there, and train again).")


def run_data_warning(run_dir: Path | str) -> str | None:
    """`data_warning` for a run folder (its config.json; the runs root is its parent), None if unreadable."""
    from cvdemo.errors import ConfigError

    run_dir = Path(run_dir)
    try:
        config = RunConfig.from_json_file(run_dir / "config.json")
    except ConfigError:
        return None
    return data_warning(config, run_dir.parent)

