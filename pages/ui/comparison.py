"""The comparison view: some runs, each named by what differs (a lesson's arm label, or a run's name),
their curves overlaid in one colour each, a table of how each ended, and the text measured from them.

Home draws it for the lesson a teacher started; the Runs page for any runs picked there.

    comparison.view([("lr 0.001", run_a), ("lr 0.03", run_b)], curves=("loss", "top-1 accuracy"))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from cvdemo import runs
from cvdemo.lesson_results import ACTIVE, lesson_outcome, lesson_rows
from pages.ui import charts, widgets

Arms = Sequence[tuple[str, Path]]


def curves(arms: Arms, metrics: Sequence[str] = ("top-1 accuracy", "loss"), *, log: bool = True,
           height: int = 300) -> None:
    """The arms' curves overlaid, side by side, one chart per metric; the legend names each arm by its label."""
    frame = charts.curves_frame({label: runs.read_metrics(run_dir) for label, run_dir in arms})
    columns = st.columns(len(metrics))
    for column, metric in zip(columns, metrics):
        with column:
            charts.draw_curve(frame, metric, by_run=True, height=height, log=log and metric == "loss",
                              names=[label for label, _ in arms])


def outcome(arms: Arms) -> None:
    """What the runs showed, measured from them once every one has finished; a waiting note before."""
    text = lesson_outcome(list(arms))
    if text is None:
        active = sum(runs.read_status(run_dir).get("state") in ACTIVE for _, run_dir in arms)
        st.caption(f"What you should see appears here when all {len(arms)} runs have finished "
                   f"({active} still training).")
    else:
        st.success(f"**What you should see** (measured): {widgets.plain(text)}", icon=":material/school:")


def table(arms: Arms) -> None:
    """One row per arm: state, health verdict, best validation and test top-1, seconds."""
    rows = [{k: v for k, v in row.items() if k != "run"} for row in lesson_rows(list(arms))]
    st.dataframe(rows, hide_index=True, placeholder=widgets.MISSING, width="stretch",
                 column_config={**widgets.PERCENT_COLUMNS, "seconds": st.column_config.NumberColumn(format="%.1f")})


def gradients(arms: Arms) -> None:
    """Per arm, the gradient norm of each layer group over the recorded steps (a heat map), then the
    share of dead ReLU units per group (lines); nothing for runs that recorded none yet."""
    frames = [(label, charts.dynamics_frame(runs.read_metrics(run_dir))) for label, run_dir in arms]
    frames = [(label, frame) for label, frame in frames if not frame.empty]
    if not frames:
        return
    st.markdown("**Gradients inside the network**")
    st.caption("Each row a layer group, input at the top; each column a recorded step; brighter = a larger "
               "gradient. A top that stays dark means the first layers hardly learn: their gradient vanished "
               "on its way back from the loss.")
    values = [v for _, frame in frames for v in frame["grad_norm"] if v is not None and v > 0]
    domain = (min(values), max(values)) if values else None  # one colour scale for all: comparable at a glance
    for column, (label, frame) in zip(st.columns(len(frames)), frames):
        with column:
            st.markdown(f"`{label}`")
            st.altair_chart(charts.gradient_heatmap(frame, domain=domain), width="stretch")
    dead_relus(frames)


def dead_relus(frames: Sequence[tuple[str, Any]]) -> None:
    """Per arm, each layer group's share of dead ReLU units over the recorded steps (one line per group);
    nothing when no arm's network has ReLU units."""
    frames = [(label, frame) for label, frame in frames if "dead_relu" in charts.dynamics_values(frame)]
    if not frames:
        return
    st.markdown("**Dead ReLU units**")
    st.caption("Per layer group, the share of its units (channels) whose ReLU outputs 0 for every image of a "
               "fixed batch: a dead unit passes no gradient back, so it no longer learns.")
    for column, (label, frame) in zip(st.columns(len(frames)), frames):
        with column:
            st.markdown(f"`{label}`")
            st.altair_chart(charts.dynamics_lines(frame, "dead_relu", height=200), width="stretch")


def view(arms: Arms, metrics: Sequence[str] = ("top-1 accuracy", "loss"), *, log: bool = True,
         dynamics: bool = False) -> None:
    """Curves, the summary table and the measured outcome of `arms` ((label, run folder) pairs); with
    `dynamics`, the arms' gradient heat maps and dead-ReLU lines too."""
    curves(arms, metrics, log=log)
    st.caption("One colour per run. Solid lines: training; dashed: validation.")
    table(arms)
    outcome(arms)
    if dynamics:
        gradients(arms)
