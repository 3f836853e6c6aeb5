"""Top-k probability bars, the way the Explain page draws them: one bar per class, the answer darker."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd


def top_bars(guesses: list[dict[str, Any]], height_per_bar: int = 34, label_size: int = 14) -> alt.Chart:
    """A horizontal bar chart of [{"class", "index", "prob"}, ...] (surest first), probabilities on 0-100%."""
    return alt.Chart(pd.DataFrame(guesses), height=height_per_bar * len(guesses) + 20).mark_bar().encode(
        y=alt.Y("class:N", sort="-x", title=None, axis=alt.Axis(labelLimit=240, labelFontSize=label_size)),
        x=alt.X("prob:Q", title="probability", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.condition(alt.datum.index == guesses[0]["index"], alt.value("#2563eb"), alt.value("#93c5fd")),
        tooltip=["class", alt.Tooltip("prob:Q", format=".1%")])
