"""The report's Plotly figures: accuracy-vs-cost Pareto fronts and cost-vs-resolution scaling.

Every string that comes from a suite or a plugin (module names, options, backbones) is passed
through ``esc`` before it reaches a figure: Plotly renders labels as a small subset of HTML and
decodes ``&lt; &gt; &amp;``, so an escaped ``<script>`` shows as text.
"""

from __future__ import annotations

import html
import math
import re

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from hambench.reports.pareto import front_order, pareto_mask
from hambench.reports.runs import normalise_results

# Accuracy metrics a front is drawn for, and which way is better.
ACCURACY = {"mIoU": "max", "fid": "min", "fid_surrogate": "min"}
# Every metric shown in the hover, beyond the front's own.
METRICS = ["mIoU", "aAcc", "fid", "fid_surrogate", "symmetry_error"]
# Cost axes of the fronts: column, axis title, reference-table column and its scale to raw units.
COSTS = [
    ("macs", "MACs (torchprofile)", "gmacs", 1e9),
    ("params", "parameters", "params_M", 1e6),
    ("latency_ms", "latency (ms)", None, None),
    ("peak_mem_bytes", "peak memory (bytes)", None, None),
]
SCALING = [("macs", "MACs"), ("latency_ms", "latency (ms)"), ("peak_mem_bytes", "peak memory (bytes)")]
CONFIG_KEYS = ["task", "data", "module", "family", "backbone", "head", "options", "iters", "profile_shape"]

FAMILY_COLORS = {"hamburger": "#d95f02", "attention": "#1b6ca8", "none": "#6b6b6b", "other": "#1b9e77"}
BACKBONE_SYMBOLS = ["circle", "square", "triangle-up", "cross", "x", "star", "pentagon", "hexagon", "triangle-down"]
REFERENCE_SYMBOL = "diamond-open"
LOG_RANGE = 30.0  # use a log axis once max/min of the values exceeds this
FIG_HEIGHT = 430


def esc(value: object) -> str:
    """Escape text for a Plotly label (``quote=False``: Plotly decodes only ``&lt; &gt; &amp;``)."""
    return html.escape("" if value is None or value is pd.NA else str(value), quote=False)


def si(value: float | None, unit: str = "") -> str:
    """``1.23e9`` -> ``"1.23 G"``: counts and bytes in engineering prefixes."""
    if value is None or pd.isna(value):
        return "n/a"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def _ms(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3g} ms"


def with_macs(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``macs``: torchprofile's count (the tool the published VAN tables used), else fvcore's."""
    df = df.copy()
    nan = pd.Series(np.nan, index=df.index)
    tp = pd.to_numeric(df.get("macs_torchprofile", nan), errors="coerce")
    fv = pd.to_numeric(df.get("macs_fvcore", nan), errors="coerce")
    df["macs"] = tp.fillna(fv)
    return df


# ---------------------------------------------------------------------------------------------
# Seeds -> one point per configuration
# ---------------------------------------------------------------------------------------------


def aggregate_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every metric and cost, one row per configuration (CONFIG_KEYS).

    Only successful trials count. Adds ``<col>_std`` for each metric, ``n_seeds`` and ``trials``.
    """
    results = normalise_results(results)
    ok = with_macs(results[results["status"] == "ok"])
    if ok.empty:
        return ok.assign(n_seeds=[], trials=[])
    extra_costs = ["macs_fvcore", "macs_torchprofile", "flops_torch", "latency_iqr_ms", "seconds"]
    numeric = METRICS + [c for c, *_ in COSTS] + extra_costs
    for col in numeric:
        ok[col] = pd.to_numeric(ok[col], errors="coerce")
    config = [k for k in CONFIG_KEYS if k in ok.columns]  # `head` is written by seg runs only
    keys = ok[config].astype("string").fillna("")  # NaN keys would drop rows from groupby
    groups = ok.groupby([keys[k] for k in config], sort=True, dropna=False)
    agg = groups[numeric].mean()
    std = groups[METRICS].std(ddof=1).add_suffix("_std")
    extra = groups.agg(
        n_seeds=("trial_id", "size"),
        trials=("trial_id", lambda s: ", ".join(map(str, s))),
        seeds=("seed", lambda s: ", ".join(map(str, s))),
        device_name=("device_name", "first"),
        node=("node", "first"),
        runs=("run_id", lambda s: ", ".join(dict.fromkeys(map(str, s)))),
    )
    return pd.concat([agg, std, extra], axis=1).reset_index()


def _hover(row: pd.Series, on_front: bool | None) -> str:
    """The full trial configuration and every metric, escaped, as Plotly hover text."""
    lines = [
        f"<b>{esc(row['module'])}</b> ({esc(row['family'])})",
        f"backbone {esc(row['backbone'])}" + (f" · head {esc(row['head'])}" if row.get("head") else "")
        + f" · data {esc(row['data'])} · iters {esc(row['iters'])}",
        f"options {esc(row['options'])}",
        f"seeds: {int(row['n_seeds'])} ({esc(row['seeds'])}) · trials {esc(row['trials'])}",
    ]
    for m in METRICS:
        if m in row and pd.notna(row[m]):
            spread = f" ± {row[m + '_std']:.3g}" if pd.notna(row.get(m + "_std")) else ""
            lines.append(f"{m}: {row[m]:.4g}{spread}")
    lines += [
        f"params {si(row.get('params'))} · MACs fvcore {si(row.get('macs_fvcore'))} · "
        f"torchprofile {si(row.get('macs_torchprofile'))} · FLOPs torch {si(row.get('flops_torch'))}",
        f"latency {_ms(row.get('latency_ms'))} · peak memory {si(row.get('peak_mem_bytes'), 'B')} "
        f"at {esc(row.get('profile_shape'))}",
        f"{esc(row.get('device_name'))} on {esc(row.get('node'))} · run {esc(row.get('runs'))}",
    ]
    if on_front is not None:
        lines.append("<i>on the Pareto front</i>" if on_front else "<i>dominated</i>")
    return "<br>".join(lines)


# ---------------------------------------------------------------------------------------------
# Pareto fronts
# ---------------------------------------------------------------------------------------------


def _axis_type(values: pd.Series) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    v = v[v > 0]
    return "log" if len(v) > 1 and v.max() / v.min() > LOG_RANGE else "linear"


def _axis(title: str, kind: str) -> dict:
    """Axis settings; on log axes label only 1, 2 and 5 of each decade so the ticks stay readable."""
    return dict(title=title, type=kind, exponentformat="SI", **({"dtick": "D2"} if kind == "log" else {}))


def _label_sides(x: pd.Series, sense: str, kind: str) -> pd.Series:
    """Where each point's label goes: on the empty side of the front (above-left of a maximised
    metric, below-left of a minimised one), flipped right for points near the left edge."""
    t = np.log10(x.clip(lower=1e-300)) if kind == "log" else x.astype(float)
    span = (t.max() - t.min()) or 1.0
    vertical = "top" if sense == "max" else "bottom"
    return ((t - t.min()) / span).map(lambda f: f"{vertical} {'right' if f < 0.3 else 'left'}")


def _symbol_map(backbones: list[str]) -> dict[str, str]:
    return {b: BACKBONE_SYMBOLS[i % len(BACKBONE_SYMBOLS)] for i, b in enumerate(sorted(backbones))}


def _reference_points(references: pd.DataFrame | None, task: str, metric: str, ref_col: str | None,
                      scale: float | None) -> pd.DataFrame:
    """Published rows that have this metric and this cost, with the cost in raw units."""
    if references is None or ref_col is None or metric not in references.columns:
        return pd.DataFrame()
    refs = references[(references["task"] == task) & references[metric].notna() & references[ref_col].notna()]
    return refs.assign(cost=refs[ref_col] * scale)


def _reference_hover(r: pd.Series) -> str:
    notes = f"<br>{esc(r['notes'])}" if pd.notna(r.get("notes")) else ""
    return (
        f"<b>published: {esc(r['method'])}</b> ({esc(r['family'])})<br>"
        f"{esc(r['backbone'])} · {esc(r['dataset'])} {esc(r['split'])} · eval {esc(r['eval'])} · "
        f"{esc(r['iters'])} iters · crop {esc(r['crop'])}<br>"
        f"mIoU {esc(r['mIoU'])} · FID {esc(r['fid'])} · params {esc(r['params_M'])} M · "
        f"{esc(r['gmacs'])} GMACs<br>source [{esc(r['source'])}] {esc(r['url'])}{notes}"
    )


def pareto_figure(points: pd.DataFrame, metric: str, cost: str, cost_title: str,
                  refs: pd.DataFrame, title: str) -> go.Figure:
    """One front: ``metric`` (mean over seeds, std error bars) against ``cost``.

    One legend entry per (family, backbone): colour is the family, the marker the backbone. Front
    points are labelled and joined by a step line; dominated ones are dimmed. References are hollow.
    The cost axis turns logarithmic when its range calls for it; zero costs (the identity module)
    are then drawn at the axis' left edge, their hover still says 0.
    """
    sense = ACCURACY[metric]
    pts = points[points[metric].notna() & points[cost].notna()].reset_index(drop=True)
    on_front = pareto_mask(pts[[cost, metric]].to_numpy(float), ["min", sense])
    symbols = _symbol_map(list(points["backbone"].unique()))
    fig = go.Figure()

    all_x = pd.concat([pts[cost], refs["cost"]]) if not refs.empty else pts[cost]
    x_kind = _axis_type(all_x)
    pts["x"] = pts[cost]
    at_edge = x_kind == "log" and (pts["x"] <= 0).any()
    if at_edge:  # a log axis has no 0: draw it below the smallest positive cost
        pts["x"] = pts["x"].where(pts["x"] > 0, all_x[all_x > 0].min() / 3)
    label_side = _label_sides(pts["x"], sense, x_kind)
    for (family, backbone), grp in pts.groupby(["family", "backbone"], sort=True):
        color = FAMILY_COLORS.get(family, FAMILY_COLORS["other"])
        group = f"{family} · {backbone}"
        # A legend-only entry at full opacity; the points themselves come in two traces of the group.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=esc(group), legendgroup=group,
                                 marker=dict(color=color, symbol=symbols[backbone], size=10)))
        for front in (True, False):
            sub = grp[on_front[grp.index] == front]
            if sub.empty:
                continue
            fig.add_trace(go.Scatter(
                x=sub["x"], y=sub[metric], mode="markers+text" if front else "markers",
                legendgroup=group, showlegend=False,
                marker=dict(color=color, symbol=symbols[backbone], size=11 if front else 9,
                            opacity=1.0 if front else 0.35, line=dict(width=1, color="white")),
                error_y=dict(type="data", array=sub[metric + "_std"].fillna(0), thickness=1.2, width=3,
                             color=color if front else "rgba(120,120,120,0.35)"),
                text=[esc(m) for m in sub["module"]] if front else None,
                textposition=list(label_side[sub.index]) if front else None, textfont=dict(size=10, color="#333"),
                cliponaxis=False,
                hovertext=[_hover(r, front) for _, r in sub.iterrows()],
                hovertemplate="%{hovertext}<extra></extra>",
            ))

    order = front_order(pts[cost].to_numpy(float), pts[metric].to_numpy(float), on_front)
    if len(order):
        fig.add_trace(go.Scatter(
            x=pts["x"].iloc[order], y=pts[metric].iloc[order], mode="lines", line_shape="hv",
            line=dict(color="#333", width=1.5, dash="dot"), name="Pareto front", hoverinfo="skip",
        ))

    if not refs.empty:
        fig.add_trace(go.Scatter(
            x=refs["cost"], y=refs[metric], mode="markers", name="published (references.csv)",
            marker=dict(symbol=REFERENCE_SYMBOL, size=10, line=dict(width=1.5),
                        color=[FAMILY_COLORS.get(f, FAMILY_COLORS["other"]) for f in refs["family"]]),
            hovertext=[_reference_hover(r) for _, r in refs.iterrows()],
            hovertemplate="%{hovertext}<extra></extra>",
        ))

    better = "higher is better" if sense == "max" else "lower is better"
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)), height=FIG_HEIGHT, template="plotly_white",
        margin=dict(l=60, r=20, t=50, b=50), hoverlabel=dict(align="left"),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0, font=dict(size=11)),
        xaxis=_axis(cost_title + (" (0 drawn at the left edge)" if at_edge else ""), x_kind),
        yaxis=_axis(f"{metric} ({better})", "linear"),
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Scaling with resolution
# ---------------------------------------------------------------------------------------------


def _pixels(shape: object) -> float:
    """n = H*W from a shape string such as ``"1x512x128x128"``."""
    dims = [int(d) for d in re.findall(r"\d+", str(shape))]
    return float(dims[-1] * dims[-2]) if len(dims) >= 2 else math.nan


def _exponent(grp: pd.DataFrame, col: str) -> float:
    """The fitted exponent of ``col ~ n^k``: the profiler's own fit when the rows carry it, else the
    same fit (hambench.profiling.fit_exponent) made here."""
    key = {"macs": "exponent_macs", "latency_ms": "exponent_latency", "peak_mem_bytes": "exponent_memory"}[col]
    stored = pd.to_numeric(grp[key], errors="coerce").dropna() if key in grp else pd.Series(dtype=float)
    if not stored.empty:
        return float(stored.iloc[0])
    from hambench.profiling import fit_exponent  # imports torch: only for tables without the fit

    ok = grp[grp["n"].notna() & grp[col].notna()]
    return fit_exponent(list(ok["n"]), list(ok[col])) if ok["n"].nunique() > 1 else math.nan


def scaling_figures(profile: pd.DataFrame, families: dict[str, str]) -> dict[str, go.Figure]:
    """MACs, latency and memory against n = H*W on log-log axes, one line per module."""
    if profile is None or "sweep_size" not in profile.columns:
        return {}
    sweep = with_macs(profile[profile["sweep_size"].notna()])
    if sweep.empty:
        return {}
    sweep["n"] = sweep["shape"].map(_pixels) if "shape" in sweep else sweep["sweep_size"].astype(float) ** 2
    for col, _ in SCALING:
        sweep[col] = pd.to_numeric(sweep.get(col, np.nan), errors="coerce")
    keys = ["module", "options"] if "options" in sweep else ["module"]
    if "device" in sweep and sweep["device"].nunique() > 1:
        keys.append("device")
    sweep[keys] = sweep[keys].astype("string").fillna("")

    dashes = {"hamburger": "solid", "attention": "dash", "none": "dot"}
    # One colour per line, the same in all three plots (a line missing from one must not shift them).
    palette = plotly.colors.qualitative.Plotly
    lines = sorted(sweep[keys].drop_duplicates().itertuples(index=False, name=None))
    color = {key: palette[i % len(palette)] for i, key in enumerate(lines)}
    figures = {}
    for col, title in SCALING:
        fig = go.Figure()
        for key, grp in sweep.groupby(keys, sort=True):
            grp = grp.sort_values("n")
            if not (grp[col] > 0).any():  # nothing to draw on a log axis (e.g. the identity's 0 MACs)
                continue
            module = key[0]
            variants = sweep.loc[sweep["module"] == module, keys].drop_duplicates()
            label = " ".join(esc(k) for k in (key if len(variants) > 1 else key[:1]) if k and k != "{}")
            k = _exponent(grp, col)
            fit = "(no fit)" if math.isnan(k) else f"n^{round(k, 2) + 0.0:.2f}"
            fig.add_trace(go.Scatter(
                x=grp["n"], y=grp[col], mode="lines+markers", name=f"{label}  {fit}",
                line=dict(dash=dashes.get(families.get(module, "other"), "dashdot"), color=color[key]),
                marker=dict(size=7),
                hovertemplate=f"{label}<br>n=%{{x:,}}<br>{title}: %{{y:.4s}}<extra></extra>",
            ))
        fig.update_layout(
            title=dict(text=f"{title} vs n = H·W", font=dict(size=14)),
            height=FIG_HEIGHT + 60, template="plotly_white", margin=dict(l=60, r=20, t=50, b=50),
            xaxis=_axis("n = H·W (pixels)", "log"), yaxis=_axis(title, "log"),
            legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, font=dict(size=11)),
        )
        figures[f"scaling/{col}"] = fig
    return figures


# ---------------------------------------------------------------------------------------------
# All figures
# ---------------------------------------------------------------------------------------------


def build_figures(results: pd.DataFrame, profile: pd.DataFrame | None = None,
                  references: pd.DataFrame | None = None) -> dict[str, go.Figure]:
    """Every figure of the report, keyed ``pareto/<data>/<metric>/<cost>`` and ``scaling/<cost>``.

    ``results`` follows the run directory's results.parquet schema; ``profile`` its profile.parquet
    (sweep rows feed the scaling plots); ``references`` the shipped references.csv.
    """
    results = normalise_results(results)
    points = aggregate_seeds(results)
    figures: dict[str, go.Figure] = {}
    for metric, _ in ACCURACY.items():
        if metric not in points or points[metric].isna().all():
            continue
        for data, at_data in points[points[metric].notna()].groupby("data", sort=True):
            task = at_data["task"].iloc[0]
            shapes = [s for s in at_data["profile_shape"].unique() if s]
            at_shape = f" at {esc(shapes[0])}" if len(shapes) == 1 else ""  # where the costs were measured
            for cost, cost_title, ref_col, scale in COSTS:
                if at_data[cost].isna().all():
                    continue
                refs = _reference_points(references, task, metric, ref_col, scale)
                title = f"{metric} vs {cost_title} · {esc(data)}"
                key = f"pareto/{data}/{metric}/{cost}"
                figures[key] = pareto_figure(at_data, metric, cost, cost_title + at_shape, refs, title)
    families = dict(zip(results["module"].astype(str), results["family"].astype(str)))
    figures.update(scaling_figures(profile, families))
    return figures
