"""The report's "Aggregate over comparisons" section, for runs that compared modules in two or more
comparisons (the probe levels, several data sets): each configuration's interquartile mean of its
normalised scores with a stratified bootstrap 95 % interval, and the performance profiles
(hambench.stats.aggregates, performance_profile; docs/statistics.md)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from hambench.reports.markup import e, figure_div, table
from hambench.reports.style import FAMILY_COLORS, axis, layout
from hambench.stats import aggregates, configuration_label, performance_profile

DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")  # apart within a family's colour


def profile_figure(profile: pd.DataFrame, metric: str) -> go.Figure:
    """One line per configuration: the share of its runs scoring above tau."""
    fig = go.Figure()
    seen: dict[str, int] = {}
    for _, grp in profile.groupby(["module", "options", "backbone", "head"], sort=False):
        row = grp.iloc[0]
        family = str(row["family"])
        dash = DASHES[seen.get(family, 0) % len(DASHES)]
        seen[family] = seen.get(family, 0) + 1
        fig.add_trace(
            go.Scatter(
                x=grp["tau"],
                y=grp["fraction"],
                mode="lines",
                line_shape="hv",
                name=configuration_label(row),
                line=dict(color=FAMILY_COLORS.get(family, FAMILY_COLORS["other"]), dash=dash),
            )
        )
    layout(
        fig,
        f"Performance profile: share of runs with normalised {metric} above tau",
        axis("tau (0: none's mean, 1: the comparison's best mean)", "linear"),
        {**axis("fraction of runs", "linear"), "range": [-0.02, 1.02]},
    )
    return fig


def aggregate_section(results: pd.DataFrame) -> str:
    """The IQM table and the performance profile; nothing for a run with one comparison."""
    agg = aggregates(results)
    if agg.empty:
        return ""
    out = [
        "<section id='aggregate'><h2>Aggregate over comparisons</h2>",
        "<p class='muted'>Each run's headline score normalised within its comparison (data set and "
        "options): 0 is <code>none</code>'s mean, 1 the best configuration's mean (without "
        "<code>none</code>, the worst configuration's mean is 0). IQM: the mean of the middle 50% of a "
        "configuration's normalised scores over every comparison and seed, with a stratified bootstrap 95% "
        "interval (seeds resampled within each comparison). The profile draws, for each threshold tau, the "
        "share of a configuration's runs above it: a curve above another everywhere is better at every level "
        "(Agarwal et al., NeurIPS 2021).</p>",
    ]
    profile = performance_profile(results)
    for metric, grp in agg.groupby("metric", sort=False):
        body = [
            [
                (e(configuration_label(r)), None),
                (e(r["family"]), None),
                (e(int(r["comparisons"])), int(r["comparisons"])),
                (e(int(r["runs"])), int(r["runs"])),
                (f"{r['iqm']:.3f} <span class='muted'>[{r['ci_low']:.3f}, {r['ci_high']:.3f}]</span>", r["iqm"]),
                (f"{r['mean']:.3f}", r["mean"]),
            ]
            for _, r in grp.iterrows()
        ]
        columns = ["configuration", "family", "comparisons", "runs", f"IQM of normalised {metric} [95% CI]", "mean"]
        out.append(f"<h3>{e(metric)}</h3>" + table(columns, body, sortable=True))
        out.append(figure_div(profile_figure(profile, str(metric))))
    return "\n".join(out + ["</section>"])
