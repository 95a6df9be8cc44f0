"""The context module alone: cost against cost at the suite's profile shape, one point per module
and options, from the profiling trials; both axes lower is better, the non-dominated points joined.
No accuracy here: a trained model's accuracy belongs to the whole model's cost (``pareto_figures``).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from hambench.reports.pareto import front_order, pareto_mask
from hambench.reports.style import FAMILY_COLORS, axis, axis_type, esc, front_line, layout
from hambench.schema import MODULE_COSTS
from hambench.tasks import PROFILE
from hambench.units import ms, si

__all__ = ["module_figure", "module_figures"]


def module_figure(points: pd.DataFrame, x: str, y: str, shape: str) -> go.Figure:
    """The context module alone at ``shape``: cost ``y`` against cost ``x``, one point per module
    and options, both lower is better; the non-dominated points labelled and joined."""
    pts = points[points[x].notna() & points[y].notna()].reset_index(drop=True)
    on_front = pareto_mask(pts[[x, y]].to_numpy(float), ["min", "min"])
    kinds = {c: axis_type(pts[c]) for c in (x, y)}
    shown = {}
    for c in (x, y):  # a log axis has no 0 (the identity's MACs): draw it below the smallest cost
        v = pts[c].astype(float)
        floor = v[v > 0].min() / 3 if (v > 0).any() else 1.0
        shown[c] = v.where(v > 0, floor) if kinds[c] == "log" else v
    fig = go.Figure()
    for family, grp in pts.groupby("family", sort=True):
        fig.add_trace(
            go.Scatter(
                x=shown[x][grp.index],
                y=shown[y][grp.index],
                mode="markers+text",
                name=esc(family),
                marker=dict(
                    color=FAMILY_COLORS.get(family, FAMILY_COLORS["other"]),
                    size=10,
                    opacity=[1.0 if f else 0.45 for f in on_front[grp.index]],
                    line=dict(width=1, color="white"),
                ),
                text=[esc(m) for m in grp["module"]],
                textposition="top right",
                textfont=dict(size=10, color="#333"),
                cliponaxis=False,
                hovertext=[_module_hover(r, x, y) for _, r in grp.iterrows()],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    order = front_order(pts[x].to_numpy(float), pts[y].to_numpy(float), on_front)
    if len(order):
        fig.add_trace(front_line(shown[x].iloc[order], shown[y].iloc[order]))
    zero = " (0 drawn at the edge)"
    layout(
        fig,
        f"{MODULE_COSTS[y]} vs {MODULE_COSTS[x]} · context module alone at {esc(shape)}",
        axis(MODULE_COSTS[x] + (zero if kinds[x] == "log" and (pts[x] <= 0).any() else ""), kinds[x]),
        axis(
            MODULE_COSTS[y] + " (lower is better)" + (zero if kinds[y] == "log" and (pts[y] <= 0).any() else ""),
            kinds[y],
        ),
    )
    return fig


def _module_hover(row: pd.Series, x: str, y: str) -> str:
    return "<br>".join(
        [
            f"<b>{esc(row['module'])}</b> ({esc(row['family'])}) · options {esc(row['options'])}",
            f"context module alone at {esc(row.get('profile_shape'))}",
            f"{esc(MODULE_COSTS[x])}: {si(row[x])} · {esc(MODULE_COSTS[y])}: {si(row[y])}",
            f"params {si(row.get('params'))} · MACs fvcore {si(row.get('macs_fvcore'))} · torchprofile "
            f"{si(row.get('macs_torchprofile'))} · latency {ms(row.get('latency_ms'))} · "
            f"peak memory {si(row.get('peak_mem_bytes'), 'B')}",
            f"{esc(row.get('device_name'))} on {esc(row.get('node'))} · run {esc(row.get('runs'))}",
        ]
    )


def module_figures(points: pd.DataFrame, pairs: list[tuple[str, str]]) -> dict[str, go.Figure]:
    """The module's own cost, from the profiling trials, per profile shape: ``module/<shape>/<y>/<x>``."""
    prof = points[points["task"] == PROFILE] if "task" in points else points.iloc[:0]
    figures: dict[str, go.Figure] = {}
    for shape, at_shape in prof.groupby(prof["profile_shape"].astype("string").fillna(""), sort=True):
        for x, y in pairs:
            if x in at_shape and y in at_shape and at_shape[x].notna().any() and at_shape[y].notna().any():
                figures[f"module/{shape}/{y}/{x}"] = module_figure(at_shape, x, y, str(shape))
    return figures
