"""The report's "Probability of improvement" section: per comparison (task, data set and options,
arm) and its headline metric, a matrix of P(row better than column) over the seeds, each cell with
its bootstrap 95 % interval in its hover (hambench.stats.improvements, the numbers of ``pairs.csv``).

A cell near 1 says the row's seeds beat the column's nearly always; 0.5 says neither tends to win.
With three seeds a side there are nine pairs of seeds, so P moves in steps of 1/18 and its interval
is wide: read it beside the ranks, not instead of them."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from hambench.reports.markup import e, figure_div
from hambench.reports.style import axis, layout
from hambench.stats import ARM_TITLES, data_title


def improvement_figure(pairs: pd.DataFrame, order: list[str], title: str) -> go.Figure:
    """The P(row better than column) matrix of one comparison, rows and columns in ``order``."""
    cell = {(r.a, r.b): r for r in pairs.itertuples()}
    z, text, hover = [], [], []
    for a in order:
        z.append([cell[(a, b)].p_improvement if (a, b) in cell else None for b in order])
        text.append([f"{cell[(a, b)].p_improvement:.2f}" if (a, b) in cell else "" for b in order])
        hover.append(
            [
                f"P({a} better than {b}) = {cell[(a, b)].p_improvement:.2f}<br>95% CI "
                f"[{cell[(a, b)].ci_low:.2f}, {cell[(a, b)].ci_high:.2f}] over "
                f"{cell[(a, b)].n_a} x {cell[(a, b)].n_b} seeds"
                if (a, b) in cell
                else ""
                for b in order
            ]
        )
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=order,
            y=order,
            text=text,
            texttemplate="%{text}",
            hovertext=hover,
            hoverinfo="text",
            zmin=0,
            zmax=1,
            colorscale="RdBu",
            colorbar=dict(title="P(row better)"),
        )
    )
    layout(fig, title, axis("column (B)", "category"), {**axis("row (A)", "category"), "autorange": "reversed"})
    fig.update_layout(height=max(360, 42 * len(order) + 160), margin=dict(l=160, b=120))
    return fig


def improvement_section(pairs: pd.DataFrame, summary: pd.DataFrame) -> str:
    """One matrix per comparison with two or more configurations, on its headline metric; rows and
    columns in the ranking's order."""
    rows = pairs[pairs["headline"].astype(bool)] if not pairs.empty else pairs
    if rows.empty:
        return ""
    out = [
        "<section id='improvement'><h2>Probability of improvement</h2>",
        "<p class='muted'>P(A better than B): the share of pairs of seeds (one of A's, one of B's) in "
        "which A scores better, a tie counting half (the Mann-Whitney U over n<sub>A</sub>·n<sub>B</sub>; "
        "Agarwal et al., NeurIPS 2021). Hover a cell for its 95% bootstrap interval (each "
        "configuration's seeds resampled on their own). With three seeds a side the interval is wide: a "
        "cell of 1.00 says every seed of A beat every seed of B, not that A is better everywhere. "
        "Every metric's pairs are in <code>pairs.csv</code>.</p>",
    ]
    keys = ["task", "data", "data_options", "arm"]
    rows = rows.assign(**{k: rows[k].astype("string").fillna("") for k in keys})
    ranked = summary.assign(**{k: summary[k].astype("string").fillna("") for k in keys if k in summary})
    for (task, data, options, arm), grp in rows.groupby(keys, sort=False):
        labels = list(dict.fromkeys([*grp["a"], *grp["b"]]))
        order = _ranking_order(ranked, grp, labels, (task, data, options, arm))
        metric = str(grp["metric"].iloc[0])
        title = f"{task} on {data_title(data, options)}{ARM_TITLES.get(str(arm), '')}: {metric}"
        out.append(f"<h3>{e(title)}</h3>")
        out.append(figure_div(improvement_figure(grp, order, f"P(row better than column), {metric}")))
    return "\n".join(out + ["</section>"])


def _ranking_order(summary: pd.DataFrame, pairs: pd.DataFrame, labels: list[str], key: tuple[str, ...]) -> list[str]:
    """``labels`` in the ranking table's order (summary rows are sorted best first), by module."""
    task, data, options, arm = key
    metric = str(pairs["metric"].iloc[0])
    mask = (summary["task"] == task) & (summary["data"] == data) & (summary["metric"] == metric)
    if "data_options" in summary:
        mask &= summary["data_options"] == options
    if "arm" in summary:
        mask &= summary["arm"] == arm
    modules = list(dict.fromkeys(summary.loc[mask, "module"].astype(str)))
    module_of = dict(zip(pairs["a"], pairs["module_a"])) | dict(zip(pairs["b"], pairs["module_b"]))
    place = {m: i for i, m in enumerate(modules)}
    return sorted(labels, key=lambda label: (place.get(str(module_of.get(label)), len(place)), label))
