"""The report's "Score against difficulty" section: for a data set the run trained at several
levels of one option (``synthetic-recall``'s ``keys``, an embedded set's ``size``), each module's
score against the level with 95 % intervals, and the capacity table.

**Capacity** (per module and metric): the largest level up to which the module keeps at least
``KEEP`` = 90 % of what it gained over ``none`` at the easiest level, at every level on the way.
The gain over ``none`` rather than the raw score, because a head that never learnt the task
"keeps" its chance score at every level: ``none``'s own score is chance, so its capacity is
undefined. A module whose easiest-level score is not significantly above ``none``'s (Welch, as
the ranks) learnt nothing to keep: no capacity. Without ``none`` in the comparison the raw score
is used (keeps 90 % of its easiest-level score). Beside it, the trained model's cost at each level.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly
import plotly.graph_objects as go

from hambench.reports.markup import e, figure_div, number, table
from hambench.reports.style import FAMILY_COLORS, axis, esc, layout
from hambench.results import json_object
from hambench.stats import Interval, format_mean_ci, format_rank, options_label, significantly_better
from hambench.tasks import get_task, metric_sense, task_metrics
from hambench.units import ms, si

FAMILY_DASH = {"attention": "solid", "hamburger": "dash", "none": "dot"}
FAMILY_SYMBOL = {"attention": "circle", "hamburger": "square", "none": "x"}
KEEP = 0.9  # a level is within capacity while the module keeps this fraction of its easiest-level gain
NONE = "none"


def level_sweeps(summary: pd.DataFrame) -> list[tuple[str, str, str, pd.DataFrame]]:
    """(task, data, option, rows) for every data set trained at two or more values of one option,
    the other options equal; ``rows`` are its summary rows with a numeric ``level`` column."""
    if summary.empty or "data_options" not in summary:
        return []
    rows = summary[summary["metric"].fillna("") != ""].copy()
    parsed = rows["data_options"].map(lambda o: json_object(o) or {})
    out = []
    for (task, data), idx in rows.groupby(["task", "data"], sort=False).groups.items():
        options = parsed.loc[idx]
        keys = sorted({k for o in options for k in o})
        for key in keys:
            values = {o.get(key) for o in options}
            others = {tuple(sorted((k, v) for k, v in o.items() if k != key)) for o in options}
            if len(values - {None}) >= 2 and len(others) == 1:
                sweep = rows.loc[idx].assign(level=[o.get(key) for o in options])
                out.append((str(task), str(data), key, sweep.dropna(subset=["level"])))
    return out


def _label(row: pd.Series) -> str:
    return f"{row['module']} {options_label(str(row['module']), row['options'])}".replace(" defaults", "")


def _interval(row: pd.Series) -> Interval:
    return Interval(
        int(row["n"] or 0), float(row["mean"]), float(row["std"]), float(row["ci_low"]), float(row["ci_high"])
    )


def score_figure(sweep: pd.DataFrame, task: str, data: str, key: str, metric: str) -> go.Figure:
    """Mean ± 95 % CI of ``metric`` against the level, one line per configuration."""
    fig = go.Figure()
    # A colour per configuration (a family's colour would make its members one line), a dash per family.
    palette = plotly.colors.qualitative.D3
    for i, (label, grp) in enumerate(sweep.groupby(sweep.apply(_label, axis=1), sort=False)):
        grp = grp.sort_values("level")
        family = str(grp["family"].iloc[0])
        colour = FAMILY_COLORS["none"] if grp["module"].iloc[0] == NONE else palette[i % len(palette)]
        fig.add_trace(
            go.Scatter(
                x=grp["level"],
                y=grp["mean"],
                error_y=dict(type="data", array=grp["ci_half"].fillna(0), visible=True),
                mode="lines+markers",
                name=esc(label),
                line=dict(color=colour, dash=FAMILY_DASH.get(family, "dashdot")),
                marker=dict(symbol=FAMILY_SYMBOL.get(family, "diamond"), size=8),
                hovertemplate=f"{esc(label)}<br>{esc(key)} %{{x}}: %{{y:.2f}}<extra></extra>",
            )
        )
    title = f"{esc(task)} on {esc(data)}: {esc(metric)} against {esc(key)} (mean ± 95% CI over seeds)"
    levels = sorted(sweep["level"].unique())
    x = axis(key, "linear") | dict(tickvals=levels)
    layout(fig, title, x, axis(metric, "linear"))
    return fig


def kept_fractions(grp: pd.DataFrame, baseline: pd.DataFrame | None) -> dict[Any, float] | None:
    """Per level, the fraction of its easiest-level gain over ``none`` a configuration keeps (its
    rows, one per level; ``baseline``: none's rows, None when not in the run: the raw score). None
    when it learnt nothing to keep: its easiest level not significantly better than none's."""
    grp = grp.sort_values("level")
    first = grp.iloc[0]
    sense = metric_sense(str(first["metric"]))
    sign = 1.0 if sense == "max" else -1.0
    chance: dict[Any, float] = {}
    if baseline is not None:
        chance = dict(zip(baseline["level"], baseline["mean"]))
        base = baseline[baseline["level"] == first["level"]]
        if base.empty or not significantly_better(_interval(first), _interval(base.iloc[0]), sense):
            return None
    gain0 = sign * (first["mean"] - chance.get(first["level"], 0.0))
    if not gain0 > 0:
        return None
    floor = 0.0 if baseline is None else math.nan  # a level none was not trained at: unknown
    return {r["level"]: sign * (r["mean"] - chance.get(r["level"], floor)) / gain0 for _, r in grp.iterrows()}


def capacity(grp: pd.DataFrame, baseline: pd.DataFrame | None) -> Any:
    """The largest level within capacity (module docstring): every level up to it keeps ``KEEP``
    of the easiest level's gain. None when the configuration learnt nothing to keep."""
    kept = kept_fractions(grp, baseline)
    if kept is None:
        return None
    last = None
    for level, fraction in sorted(kept.items()):
        if not (math.isfinite(fraction) and fraction >= KEEP):
            break
        last = level
    return last


def _score_cell(row: pd.Series) -> str:
    """``mean ± half width (rank)``: a level's comparison, as the ranking table shows it."""
    return (
        f"{format_mean_ci(row['mean'], row['ci_half'], int(row['n']))} ({format_rank(row['rank'], bool(row['tied']))})"
    )


def capacity_table(sweep: pd.DataFrame, key: str, metric: str) -> str:
    """Per configuration: capacity, then mean ± CI (rank) at each level and the model's cost there."""
    levels = sorted(sweep["level"].unique())
    baseline = sweep[sweep["module"] == NONE]
    baseline = None if baseline.empty else baseline
    cost = "model_latency_ms" if "model_latency_ms" in sweep and sweep["model_latency_ms"].notna().any() else None
    columns = ["module", "options", f"capacity ({key})"]
    columns += [f"{key}={v}" for v in levels]
    columns += [f"model latency at {key}={v}" for v in levels] if cost else []
    columns += ["model MACs"] if "model_macs" in sweep else []
    body = []
    for _, grp in sweep.groupby(sweep.apply(_label, axis=1), sort=False):
        first = grp.iloc[0]
        at = {r["level"]: r for _, r in grp.iterrows()}
        kept = None if first["module"] == NONE else kept_fractions(grp, baseline)
        cap = None if first["module"] == NONE else capacity(grp, baseline)
        cells = [
            (e(first["module"]), None),
            (e(options_label(str(first["module"]), first["options"])), None),
            (e("n/a" if first["module"] == NONE else "none learnt" if cap is None else cap), number(cap)),
        ]
        for v in levels:
            r = at.get(v)
            shown = "" if r is None else _score_cell(r)
            if r is not None and kept is not None and math.isfinite(kept.get(v, math.nan)):
                shown += f", keeps {kept[v]:.1%}"
            cells.append((e(shown), None if r is None else number(r["mean"])))
        if cost:
            cells += [
                (e(ms(at[v][cost]) if v in at else ""), None if v not in at else number(at[v][cost])) for v in levels
            ]
        if "model_macs" in sweep:
            cells.append((e(si(number(first.get("model_macs")))), number(first.get("model_macs"))))
        body.append(cells)
    return table(columns, body, sortable=True)


def levels_section(summary: pd.DataFrame) -> str:
    """The section, or nothing when no data set was trained at several levels."""
    sweeps = level_sweeps(summary)
    if not sweeps:
        return ""
    out = [
        '<section id="levels"><h2>Score against difficulty</h2>',
        f"<p class='muted'>Each level is its own comparison (ranks in brackets: Welch, 5%, within the level). "
        f"Capacity: the largest level up to which a module keeps {KEEP:.0%} of what it gained over "
        f"<code>none</code> at the easiest level, at every level on the way; 'none learnt': its easiest-level "
        f"score is not significantly above <code>none</code>'s.</p>",
    ]
    for task, data, key, sweep in sweeps:
        declared = get_task(task).metrics
        wanted = [task_metrics(task)[0], *(m.name for m in declared if m.area_of)]  # the headline, its speed
        metrics = [m for m in dict.fromkeys(wanted) if m in set(sweep["metric"])]
        for metric in metrics:
            rows = sweep[sweep["metric"] == metric]
            out.append(f"<h3>{e(task)} on {e(data)}: {e(metric)} against {e(key)}</h3>")
            out.append(figure_div(score_figure(rows, task, data, key, metric)))
            out.append(capacity_table(rows, key, metric))
    return "\n".join(out + ["</section>"])
