"""The Data page's "Check this data" section: one button, then what cvdemo.audit found, drawn.

The audit itself is core (cvdemo.audit); here: the button, a progress bar fed by the audit's phases, the
summary, one tab per kind of finding with the images side by side, and the CSV download.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from cvdemo.errors import CvdemoError
from pages.ui import state, widgets

if TYPE_CHECKING:
    from cvdemo.audit import AuditReport, Finding

PER_KIND = 24        # findings drawn per tab (all of them are in the CSV)
THUMB = 88           # pixels, each picture's width


def audit_size(side: int | None) -> int:
    """The side the audit runs the network at: the images' own side within 64-224 px. A trade-off measured
    on CIFAR-10 (32 px): at 64 px a photo and its resized JPEG copy stay closer (cosine 0.98 against 0.87 at
    128 px) and the pass costs a quarter, but the linear head that finds wrong labels is weaker (61 % right,
    914 of 3,000 images flagged, against 552 at 128 px); the galleries show the surest first."""
    return max(64, min(224, int(side or 224)))


def section(source: str, side: int | None, draft: dict[str, Any], builtin: bool) -> None:
    """The whole section for the data `source` (images of `side` pixels, None if they vary); a folder or zip
    (not `builtin`) also gets the option to leave flagged files out of training."""
    from cvdemo.audit import NEAR_THRESHOLD

    d, seed = draft["data"], int(draft["train"]["seed"])
    args = (source, audit_size(side), seed, float(d["val_fraction"]), float(d["test_fraction"]), NEAR_THRESHOLD)
    if st.button("Check this data", icon=":material/fact_check:", key=state.KEY_AUDIT_RUN):
        st.session_state[state.KEY_AUDIT_FOR] = args
        st.session_state.pop(state.KEY_AUDIT_REPORT, None)
    if st.session_state.get(state.KEY_AUDIT_FOR) != args:
        st.caption("Looks for the same photo twice (and in both training and test data), likely wrong labels, "
                   "pictures unlike the rest, and blank, tiny or unreadable files. It runs a pretrained "
                   f"network over every image once, at {args[1]} px: a few seconds per hundred images on a CPU.")
        return
    report = st.session_state.get(state.KEY_AUDIT_REPORT)
    if report is None:  # kept in the session, not a shared cache: the check reports its progress on this page
        try:
            report = st.session_state[state.KEY_AUDIT_REPORT] = _run(args)
        except CvdemoError as e:
            widgets.show_error(e)
            return
        from cvdemo.audit.store import remember

        try:  # for the Evaluate page's note on runs trained on this data
            remember(report)
        except OSError:
            pass  # a read-only runs folder costs that note, not the check
    summary_of(report)
    galleries(report)
    if not builtin:
        exclusion(report)


def _run(args: tuple) -> AuditReport:
    """cvdemo.audit.audit with a progress bar following its phases."""
    from cvdemo.audit import audit
    from cvdemo.progress import listening

    bar = st.progress(0.0, text="Checking the data…")

    def show(snapshot: dict) -> None:
        total = max(1, int(snapshot["total"]))
        bar.progress(min(1.0, snapshot["done"] / total),
                     text=f"{snapshot['label']}: {snapshot['done']:,} / {total:,} {snapshot['unit']}")

    source, image_size, seed, val_fraction, test_fraction, near_threshold = args
    with listening(show):
        report = audit(source, image_size=image_size, seed=seed, val_fraction=val_fraction,
                       test_fraction=test_fraction, near_threshold=near_threshold)
    bar.empty()
    return report


def summary_of(report: AuditReport) -> None:
    """One metric per kind of problem found, and a warning when the test number cannot be trusted."""
    from cvdemo.audit import KINDS

    s = report.summary()
    found = [k for k in KINDS if s[k]]
    st.caption(f"{report.images:,} images checked in {report.seconds.get('total', 0):.0f} s with the pretrained "
               f"{report.model} at {report.image_size} px; near duplicates from cosine similarity "
               f"{report.near_threshold:g}. Scores run from 0 to 1: higher is more surely a problem.")
    if not found:
        st.success("Nothing suspicious found.", icon=":material/check_circle:")
    for start in range(0, len(found), 5):
        for column, kind in zip(st.columns(5), found[start:start + 5]):
            column.metric(KINDS[kind].split(" (")[0], f"{s[kind]:,}", help=KINDS[kind])
    if s["leakage"] or s["conflicting"]:
        st.warning(f"Duplicate groups in both the training and the validation/test images: {s['leakage']}; "
                   f"with different labels: {s['conflicting']}. The test accuracy of a model trained on this "
                   "data will look better than it is.", icon=":material/warning:")
    for line in report.notes:
        st.caption(line)
    st.download_button("Download the findings (CSV)", report.to_csv(), file_name="data-check.csv",
                       mime="text/csv", icon=":material/download:", key=state.KEY_AUDIT_CSV)


def galleries(report: AuditReport) -> None:
    """A tab per kind of finding, highest (or lowest) score first, the images of each finding side by side."""
    from cvdemo.audit import KINDS

    kinds = [k for k in KINDS if report.by_kind(k)]
    if not kinds:
        return
    lowest = st.toggle("Lowest scores first", key=state.KEY_AUDIT_ORDER)
    for kind, tab in zip(kinds, st.tabs([f"{KINDS[k].split(' (')[0]} ({len(report.by_kind(k))})" for k in kinds])):
        with tab:
            found = report.by_kind(kind)
            shown = (found[::-1] if lowest else found)[:PER_KIND]
            for finding in shown:
                draw_finding(report, finding)
            if len(found) > PER_KIND:
                st.caption(f"… and {len(found) - PER_KIND} more in the CSV.")


def draw_finding(report: AuditReport, finding: Finding) -> None:
    from cvdemo.audit import item_picture

    with st.container(border=True):
        pictures = finding.items[:6]
        columns = st.columns([1] * max(1, len(pictures)) + [4])
        for column, item in zip(columns, pictures):
            picture = item_picture(report.bundle, item)
            name = item.path.rsplit("/", 1)[-1]
            caption = f"{item.label or '?'} · {item.split or '?'} · {name}"
            if picture is None:
                column.caption(caption)
            else:
                column.image(picture, caption=caption, width=THUMB)
        text = f"**{finding.score:.2f}** · {widgets.plain(finding.detail)}"
        if len(finding.items) > len(pictures):
            text += f" (and {len(finding.items) - len(pictures)} more images)"
        columns[-1].markdown(text)


# Kinds whose files are offered for leaving out, and those ticked at first (a likely wrong label or an outlier
# may be a hard, useful example: the user decides).
EXCLUDABLE = ("exact_duplicate", "near_duplicate", "label_issue", "outlier", "blank", "tiny", "aspect_ratio",
              "grayscale")
FIRST_TICKED = ("exact_duplicate", "near_duplicate", "blank", "tiny")


def exclusion(report: AuditReport) -> None:
    """Leave the files of some kinds of findings out of training: the draft's data.exclude (the run's config
    records it); the files themselves stay where they are."""
    from cvdemo.audit import KINDS

    kinds = [k for k in EXCLUDABLE if report.by_kind(k)]
    if not kinds:
        return
    st.markdown("##### Leave flagged files out of training")
    chosen = st.multiselect("Files found as", kinds, default=[k for k in kinds if k in FIRST_TICKED],
                            format_func=lambda k: KINDS[k].split(" (")[0], key=state.KEY_AUDIT_EXCLUDE_KINDS)
    files = report.exclusion(chosen)
    on = st.toggle(f"Leave these {len(files)} files out of training", key=state.KEY_AUDIT_EXCLUDE,
                   help="of each duplicate group the first image stays")
    state.update_draft(data={"exclude": files if on else []})
    if on and files:
        st.caption("Your files stay where they are: the run's settings list the ones left out "
                   "(data.exclude), so every split is made without them.")

