"""What every figure of the report shares: label escaping, the family colours, the height, the
axes (logarithmic when the values span a wide range), the layout and the Pareto front's line.

Every string that comes from a suite or a plugin (module names, options, backbones) is passed
through ``esc`` before it reaches a figure: Plotly renders labels as a small subset of HTML and
decodes ``&lt; &gt; &amp;``, so an escaped ``<script>`` shows as text.
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

__all__ = ["FAMILY_COLORS", "FIG_HEIGHT", "LOG_RANGE", "axis", "axis_type", "esc", "front_line", "layout"]

FAMILY_COLORS = {"hamburger": "#d95f02", "attention": "#1b6ca8", "none": "#6b6b6b", "other": "#1b9e77"}
LOG_RANGE = 30.0  # use a log axis once max/min of the values exceeds this
FIG_HEIGHT = 430


def esc(value: object) -> str:
    """Escape text for a Plotly label (``quote=False``: Plotly decodes only ``&lt; &gt; &amp;``)."""
    return html.escape("" if value is None or value is pd.NA else str(value), quote=False)


def axis_type(values: pd.Series) -> str:
    """``log`` when the positive values span more than LOG_RANGE, else ``linear``."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    v = v[v > 0]
    return "log" if len(v) > 1 and v.max() / v.min() > LOG_RANGE else "linear"


def axis(title: str, kind: str) -> dict:
    """Axis settings; on log axes label only 1, 2 and 5 of each decade so the ticks stay readable."""
    return dict(title=title, type=kind, exponentformat="SI", **({"dtick": "D2"} if kind == "log" else {}))


def layout(fig: go.Figure, title: str, x: dict, y: dict) -> None:
    """A figure's layout: its title, the report's height, white background and margins, hover labels
    aligned left, the legend in a row below the plot, and its x and y axes."""
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)),
        height=FIG_HEIGHT,
        template="plotly_white",
        margin=dict(l=60, r=20, t=50, b=50),
        hoverlabel=dict(align="left"),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0, font=dict(size=11)),
        xaxis=x,
        yaxis=y,
    )


def front_line(x: pd.Series, y: pd.Series) -> go.Scatter:
    """The dotted step line that joins a figure's Pareto front (``x``, ``y``: its points in front order)."""
    return go.Scatter(
        x=x,
        y=y,
        mode="lines",
        line_shape="hv",
        line=dict(color="#333", width=1.5, dash="dot"),
        name="Pareto front",
        hoverinfo="skip",
    )
