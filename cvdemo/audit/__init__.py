"""Check a data set before training: duplicates and train/test leakage, likely wrong labels, outliers,
odd images and class balance, on the frozen features of an offline pretrained network.

    from cvdemo.audit import audit
    report = audit("photos.zip")            # AuditReport
    print(report.summary())                 # {"exact_duplicate": 1, "near_duplicate": 2, "label_issue": 4, ...}
    html = audit_html(report, lambda item: item_picture(report.bundle, item))

One job per module: `features` (one pass: load, features, pixel stats, hashes), `images` (cheap checks),
`duplicates` (exact and near groups), `labels` (cleanlab: label issues, outliers), `findings` (the
report's data, JSON and CSV), `html` (the self-contained HTML report), `run` (all of it in one call).
Importing this package is cheap: torch, scikit-learn and cleanlab load when a check runs.
"""

from cvdemo.audit.duplicates import NEAR_THRESHOLD
from cvdemo.audit.features import item_picture
from cvdemo.audit.findings import KINDS, AuditReport, Finding, Item
from cvdemo.audit.html import audit_html
from cvdemo.audit.run import analyse, audit

__all__ = ["KINDS", "NEAR_THRESHOLD", "AuditReport", "Finding", "Item", "analyse", "audit", "audit_html",
           "item_picture"]
