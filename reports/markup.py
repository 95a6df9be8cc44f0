"""The report's HTML building blocks, shared by its sections (``html``, ``tuning``, ``artifacts``):
escaping, sortable tables and figure cards.

Every string from a suite, a plugin or a run passes through ``e`` before it reaches the page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

__all__ = ["PLOT_CONFIG", "e", "figure_div", "number", "table"]

# A short modebar (save, zoom, pan, reset) so it does not cover the titles of narrow plots.
PLOT_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "toImageButtonOptions": {"format": "svg"},
    "modeBarButtonsToRemove": [
        "select2d",
        "lasso2d",
        "zoomIn2d",
        "zoomOut2d",
        "autoScale2d",
        "toggleSpikelines",
        "hoverClosestCartesian",
        "hoverCompareCartesian",
    ],
}


def e(value: Any) -> str:
    """Escape any value for HTML text or attributes; missing values read ``n/a``."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "n/a"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # integer columns with gaps come back from parquet as floats
    if hasattr(value, "tolist"):  # list columns come back from parquet as numpy arrays
        value = value.tolist()
    return html.escape(", ".join(map(str, value)) if isinstance(value, list) else str(value))


def table(columns: list[str], rows: Iterable[list[tuple[str, Any]]], sortable: bool = False) -> str:
    """``rows`` of (display html, sort value or None) cells; display html is already escaped."""
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for shown, raw in row:
            numeric = isinstance(raw, (int, float)) and not isinstance(raw, bool) and pd.notna(raw)
            attrs = f' class="num" data-v="{raw!r}"' if numeric else ""
            cells.append(f"<td{attrs}>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def number(value: Any) -> float | None:
    """A cell's sort value: the number, or None when it is missing or not a number."""
    v = pd.to_numeric(value, errors="coerce")
    return None if pd.isna(v) else float(v)


def figure_div(fig: go.Figure) -> str:
    """A figure as a card (the page inlines Plotly's JavaScript once)."""
    return '<div class="card">' + fig.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG) + "</div>"
