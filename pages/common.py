"""Helpers shared by the pages: session-state keys, the runs folder, error display.

Pages stay thin: they read widgets, call cvdemo, draw. No training or metric logic here.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cvdemo import runs
from cvdemo.errors import CvdemoError

# Every st.session_state key the app uses, defined once.
KEY_SELECTED_RUN = "selected_run"


def runs_root() -> Path:
    return runs.default_root()


def show_error(error: CvdemoError) -> None:
    """A user-facing error as one readable sentence on the page."""
    st.error(str(error), icon="⚠️")


STATE_ICONS = {"queued": "⏳", "running": "🏃", "completed": "✅", "diverged": "💥", "cancelled": "⏹️",
               "failed": "❌", "interrupted": "⚡"}


def runs_table(found: list[runs.RunInfo]) -> list[dict]:
    """Rows for st.dataframe: one per run."""
    return [{"run": r.id, "state": f"{STATE_ICONS.get(r.state, '')} {r.state}", "model": r.model, "data": r.data,
             "epochs": f"{r.epochs_done}/{r.epochs}",
             "val top-1": r.best_val_top1, "test top-1": r.test_top1, "message": r.message} for r in found]
