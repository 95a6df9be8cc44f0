"""The report's Plotly figures: accuracy-vs-cost Pareto fronts, the context module's own cost, and
cost-vs-resolution scaling.

Like with like: an accuracy front's x is the whole trained model's cost (``model_*``, measured in
the trial at its training crop); the module's cost at the profile shape has its own view
(``module/...``); a published point is drawn only on a front of the same task, data set and metric
(MACs only at the same input size), and every accuracy front says in one line what it shows of them.

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

from hambench.axes import DEFAULT_MODULE_AXES, MODEL_COSTS, MODULE_COSTS, REFERENCE_COSTS
from hambench.reports.pareto import front_order, pareto_mask
from hambench.reports.runs import normalise_results
from hambench.scaling import LATENCY_FLOOR_MS, fit_sweep
from hambench.schema import reported_rows
from hambench.stats import CONFIG_KEYS, format_mean_ci, group_configurations, per_configuration, sense, tuned_label
from hambench.tasks import accuracy_columns, default_fronts

# The accuracy metrics (every task's, shown in the hover, each a possible front) and which way is
# better are the tasks' declarations: hambench.tasks.accuracy_columns, hambench.stats.sense.
# Cost axes of the accuracy fronts: the whole trained model's (hambench.axes), column and axis title.
COSTS = list(MODEL_COSTS.items())
SCALING = [("macs", "MACs"), ("latency_ms", "latency (ms)"), ("peak_mem_bytes", "peak memory (bytes)")]

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
    """One point per configuration (hambench.stats.CONFIG_KEYS) of the successful trials: for each
    metric ``m`` its mean over seeds with ``m_std``, ``m_n`` and the 95 % interval ``m_ci`` (half
    width), ``m_ci_low``, ``m_ci_high`` and every seed's value ``m_values``, computed by
    ``hambench.stats.per_configuration`` (the numbers of summary.csv); for each cost its mean; and
    ``n_seeds``, ``seeds``, ``trials``, ``device_name``, ``node``, ``runs``.
    """
    results = normalise_results(reported_rows(results))  # a tuning search's val scores are no figure
    ok = with_macs(results[results["status"] == "ok"])
    if ok.empty:
        return ok.assign(n_seeds=[], trials=[])
    extra_costs = ["macs_fvcore", "macs_torchprofile", "flops_torch", "latency_iqr_ms", "seconds",
                   *MODULE_COSTS, "model_macs_fvcore", "model_latency_iqr_ms", "model_cost_seconds"]
    costs = list(dict.fromkeys([c for c, *_ in COSTS] + extra_costs))
    points = per_configuration(ok, accuracy_columns(), costs)
    keys = [k for k in CONFIG_KEYS if k in ok.columns]  # `head` is written by seg runs only
    extra = group_configurations(ok, keys).agg(
        trials=("trial_id", lambda s: ", ".join(map(str, s))),
        device_name=("device_name", "first"),
        node=("node", "first"),
        model_shape=("model_shape", "first"),  # the training crop: one per configuration
        runs=("run_id", lambda s: ", ".join(dict.fromkeys(map(str, s)))),
    ).reset_index()
    return points.merge(extra, on=keys, how="left", validate="one_to_one")


def _metric_hover(row: pd.Series, m: str) -> str:
    """``mIoU: 43.97 ± 0.48 (95% CI 43.49 to 44.44, n 3, std 0.19)`` and every seed's value."""
    n = int(row.get(f"{m}_n", 0) or 0)
    head = f"{esc(m)}: {format_mean_ci(row[m], row.get(f'{m}_ci'), n)}"
    if n >= 2:
        head += f" (95% CI {row[f'{m}_ci_low']:.4g} to {row[f'{m}_ci_high']:.4g}, n {n}, std {row[f'{m}_std']:.3g})"
    else:
        head += ": no interval"
    values = row.get(f"{m}_values")
    seeds = " · ".join(f"{esc(s)}: {v:.4g}" for s, v in values) if isinstance(values, list) else ""
    return head + (f"<br>{esc(m)} by seed: {seeds}" if seeds else "")


def point_name(row: pd.Series) -> str:
    """A point's module, with its arm where a tuned suite has two (``ham-nmf (defaults)``)."""
    arm = row.get("arm")
    return f"{row['module']} (defaults)" if isinstance(arm, str) and arm == "default" else str(row["module"])


def _hover(row: pd.Series, on_front: bool | None) -> str:
    """The full trial configuration and every metric, escaped, as Plotly hover text."""
    arm = row.get("arm")
    tuned = f" · {esc(arm)} arm: {esc(tuned_label(row.get('tuned')))}" if isinstance(arm, str) and arm else ""
    lines = [
        f"<b>{esc(row['module'])}</b> ({esc(row['family'])}){tuned}",
        f"backbone {esc(row['backbone'])}" + (f" · head {esc(row['head'])}" if row.get("head") else "")
        + f" · data {esc(row['data'])} · iters {esc(row['iters'])}",
        f"options {esc(row['options'])}",
        f"seeds: {int(row['n_seeds'])} ({esc(row['seeds'])}) · trials {esc(row['trials'])}",
    ]
    for m in accuracy_columns():
        if m in row and pd.notna(row[m]):
            lines.append(_metric_hover(row, m))
    if pd.notna(row.get("model_macs")) or pd.notna(row.get("model_params")):
        lines.append(
            f"whole model at {esc(row.get('model_shape'))}: params {si(row.get('model_params'))} · "
            f"MACs {si(row.get('model_macs'))} · latency {_ms(row.get('model_latency_ms'))} · "
            f"peak memory {si(row.get('model_peak_mem_bytes'), 'B')}")
    lines += [
        f"context module alone at {esc(row.get('profile_shape'))}: params {si(row.get('params'))} · "
        f"MACs fvcore {si(row.get('macs_fvcore'))} · torchprofile {si(row.get('macs_torchprofile'))} · "
        f"FLOPs torch {si(row.get('flops_torch'))}",
        f"latency {_ms(row.get('latency_ms'))} · peak memory {si(row.get('peak_mem_bytes'), 'B')}",
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


def _hw(shape: object) -> str:
    """``"1x3x512x512"`` -> ``"512x512"``: the input size a published crop is compared with."""
    dims = re.findall(r"\d+", str(shape))
    return "x".join(dims[-2:]) if len(dims) >= 2 else ""


def _reference_points(references: pd.DataFrame | None, task: str, data: str, metric: str, cost: str,
                      model_shape: str | None, name: str = "references.csv") -> tuple[pd.DataFrame, str]:
    """The published rows this front may show, with the cost in raw units, and the one line that
    says what was drawn (or why nothing was).

    Like with like: same task, same data set, same metric; published costs are whole models, so
    only on whole-model axes that the source publishes (MACs, params), and MACs only at the same
    input size (published GMACs are at the published crop)."""
    none = pd.DataFrame()
    if references is None or references.empty or metric not in references.columns:
        return none, f"no published points: {name} has no {metric}"
    same = references[(references["task"] == task) & (references["dataset"].astype(str) == str(data))
                      & pd.to_numeric(references[metric], errors="coerce").notna()]
    if same.empty:
        kind = " (hambench's own synthetic data)" if str(data).startswith("synthetic") else ""
        return none, f"no published points: {name} has no {metric} on {data}{kind}"
    if cost not in REFERENCE_COSTS:
        return none, f"no published points: the {len(same)} published {metric} on {data} give no {MODEL_COSTS[cost]}"
    ref_col, scale = REFERENCE_COSTS[cost]
    refs = same[pd.to_numeric(same[ref_col], errors="coerce").notna()]
    elsewhere = ""
    if cost == "model_macs" and model_shape:  # MACs grow with the input: compare at one size only
        size = _hw(model_shape)
        at_size = refs[refs["crop"].map(_hw) == size]
        crops = ", ".join(sorted(set(refs.loc[refs.index.difference(at_size.index), "crop"].map(_hw)) - {""}))
        if at_size.empty and not refs.empty:
            return none, f"published MACs not drawn: they are at {crops or 'an unstated size'}, these models at {size}"
        if len(at_size) < len(refs):
            elsewhere = f"; {len(refs) - len(at_size)} at {crops or 'an unstated size'} left out"
        refs = at_size
    if refs.empty:
        return none, f"no published points: the published {metric} on {data} give no {MODEL_COSTS[cost]}"
    refs = refs.assign(cost=pd.to_numeric(refs[ref_col]) * scale)
    return refs, (f"hollow diamonds: {len(refs)} published whole models on {data} ({name}; hover for source "
                  f"and eval){elsewhere}")


def _add_note(fig: go.Figure, note: str) -> None:
    """One line under the title, inside the figure (it travels with an exported file)."""
    if note:
        fig.add_annotation(text=esc(note), xref="paper", yref="paper", x=0, y=1.01, xanchor="left",
                           yanchor="bottom", showarrow=False, font=dict(size=11, color="#666"))
        fig.update_layout(margin_t=70)


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
    """One front: ``metric`` (mean over seeds, 95 % confidence intervals as error bars; none for a
    single seed) against ``cost``.

    One legend entry per (family, backbone): colour is the family, the marker the backbone. Front
    points are labelled and joined by a step line; dominated ones are dimmed. References are hollow.
    The cost axis turns logarithmic when its range calls for it; zero costs (the identity module)
    are then drawn at the axis' left edge, their hover still says 0.
    """
    direction = sense(metric)
    pts = points[points[metric].notna() & points[cost].notna()].reset_index(drop=True)
    on_front = pareto_mask(pts[[cost, metric]].to_numpy(float), ["min", direction])
    symbols = _symbol_map(list(points["backbone"].unique()))
    fig = go.Figure()

    all_x = pd.concat([pts[cost], refs["cost"]]) if not refs.empty else pts[cost]
    x_kind = _axis_type(all_x)
    pts["x"] = pts[cost]
    at_edge = x_kind == "log" and (pts["x"] <= 0).any()
    if at_edge:  # a log axis has no 0: draw it below the smallest positive cost
        pts["x"] = pts["x"].where(pts["x"] > 0, all_x[all_x > 0].min() / 3)
    label_side = _label_sides(pts["x"], direction, x_kind)
    for (family, backbone), grp in pts.groupby(["family", "backbone"], sort=True):
        color = FAMILY_COLORS.get(family, FAMILY_COLORS["other"])
        group = f"{family} · {backbone}"
        # A legend-only entry at full opacity; the points themselves come in two traces of the group.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=esc(group), legendgroup=group,
                                 marker=dict(color=color, symbol=symbols[backbone], size=10)))
        # Error bars are the 95 % intervals over seeds; a point with one seed has none, and sits in
        # a trace without error bars (a missing value in an error array would draw a 0-length bar).
        has_ci = pts[metric + "_ci"].notna() if metric + "_ci" in pts else pd.Series(False, index=pts.index)
        for front, with_ci in ((True, True), (True, False), (False, True), (False, False)):
            sub = grp[(on_front[grp.index] == front) & (has_ci[grp.index] == with_ci)]
            if sub.empty:
                continue
            error_y = dict(type="data", array=sub[metric + "_ci"], thickness=1.2, width=3,
                           color=color if front else "rgba(120,120,120,0.35)") if with_ci else None
            fig.add_trace(go.Scatter(
                x=sub["x"], y=sub[metric], mode="markers+text" if front else "markers",
                legendgroup=group, showlegend=False,
                marker=dict(color=color, symbol=symbols[backbone], size=11 if front else 9,
                            opacity=1.0 if front else 0.35, line=dict(width=1, color="white")),
                error_y=error_y,
                text=[esc(point_name(r)) for _, r in sub.iterrows()] if front else None,
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

    better = "higher is better" if direction == "max" else "lower is better"
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


FIT_KIND = {"macs": "macs", "latency_ms": "latency", "peak_mem_bytes": "memory"}  # plotted column -> fit


def _fits(grp: pd.DataFrame) -> dict:
    """The sweep's fits (hambench.scaling.fit_sweep, the profiler's own), refitted from the rows so
    that every run, old or new, reads the same rule; MACs as plotted (torchprofile, else fvcore)."""
    if grp["n"].nunique() < 2:
        return {}
    return fit_sweep(grp.assign(macs_torchprofile=grp["macs"]).to_dict("records"))


def scaling_figures(profile: pd.DataFrame, families: dict[str, str]) -> dict[str, go.Figure]:
    """MACs, latency and memory against n = H*W on log-log axes, one line per module."""
    if profile is None or "sweep_size" not in profile.columns:
        return {}
    sweep = with_macs(profile[profile["sweep_size"].notna()])
    if sweep.empty:
        return {}
    sweep["n"] = sweep["shape"].map(_pixels) if "shape" in sweep else sweep["sweep_size"].astype(float) ** 2
    for col in [c for c, _ in SCALING] + ["latency_iqr_ms"]:
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
    fits = {key: _fits(grp) for key, grp in sweep.groupby(keys, sort=True)}
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
            fit = fits[key].get(FIT_KIND[col])
            # Points the fit used are filled, the others (under the timing floor, noisy) hollow.
            used = set(fit.used) if fit is not None else set()
            fig.add_trace(go.Scatter(
                x=grp["n"], y=grp[col], mode="lines+markers", name=f"{label}  {fit.label() if fit else 'no fit'}",
                line=dict(dash=dashes.get(families.get(module, "other"), "dashdot"), color=color[key]),
                marker=dict(size=7, symbol=["circle" if n in used else "circle-open" for n in grp["n"]]),
                hovertemplate=f"{label}<br>n=%{{x:,}}<br>{title}: %{{y:.4s}}<extra></extra>",
            ))
        if col == "latency_ms":
            fig.add_hline(y=LATENCY_FLOOR_MS, line=dict(dash="dot", color="#999", width=1))
            # On a log axis an annotation's y is log10 of the value (add_hline's own label misplaces it).
            fig.add_annotation(text=f"timing floor {LATENCY_FLOOR_MS:g} ms", xref="paper", x=1, xanchor="right",
                               y=math.log10(LATENCY_FLOOR_MS), yanchor="bottom", showarrow=False,
                               font=dict(size=10, color="#777"))
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


def split_axes(axes: list[tuple[str, str]] | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(x, y) pairs -> (accuracy fronts, module-cost views). None: the defaults, every front metric
    against every whole-model cost, and DEFAULT_MODULE_AXES. The module's own cost always gets its
    view: with no cost-vs-cost pair named, the default one."""
    if axes is None:
        return [(x, m) for m in default_fronts() for x in MODEL_COSTS], list(DEFAULT_MODULE_AXES)
    accuracy = [(x, y) for x, y in axes if y in accuracy_columns() and x in MODEL_COSTS]
    module = [(x, y) for x, y in axes if y in MODULE_COSTS and x in MODULE_COSTS]
    return accuracy, module or list(DEFAULT_MODULE_AXES)


def accuracy_figures(points: pd.DataFrame, pairs: list[tuple[str, str]], references: pd.DataFrame | None,
                     references_name: str = "references.csv") -> dict[str, go.Figure]:
    """Accuracy against the whole trained model's cost, per data set (and per model input size when
    a data set has several: MACs at 64x64 and at 512x512 are not one axis)."""
    figures: dict[str, go.Figure] = {}
    trained = points[points["task"] != "profile"] if "task" in points else points
    for data, at_data in trained.groupby("data", sort=True):
        shape_col = at_data["model_shape"].astype("string").fillna("") if "model_shape" in at_data else None
        shapes = sorted(set(shape_col) - {""}) if shape_col is not None else []
        for shape in shapes or [None]:
            pts = at_data if shape is None else at_data[shape_col == shape]
            suffix = f"@{shape}" if len(shapes) > 1 else ""
            for x, y in pairs:
                if y not in pts or x not in pts or pts[y].isna().all() or pd.to_numeric(pts[x], errors="coerce").isna().all():
                    continue
                refs, note = _reference_points(references, str(pts["task"].iloc[0]), data, y, x, shape, references_name)
                where = f"whole model at {esc(shape)}" if shape else "whole model"
                title = f"{y} vs {MODEL_COSTS[x]} of the whole model · {esc(data)}"
                fig = pareto_figure(pts.assign(**{x: pd.to_numeric(pts[x], errors="coerce")}), y, x,
                                    f"{MODEL_COSTS[x]}, {where}", refs, title)
                _add_note(fig, note)
                figures[f"pareto/{data}/{y}/{x}{suffix}"] = fig
    return figures


def module_figure(points: pd.DataFrame, x: str, y: str, shape: str) -> go.Figure:
    """The context module alone at ``shape``: cost ``y`` against cost ``x``, one point per module
    and options, both lower is better; the non-dominated points labelled and joined."""
    pts = points[points[x].notna() & points[y].notna()].reset_index(drop=True)
    on_front = pareto_mask(pts[[x, y]].to_numpy(float), ["min", "min"])
    kinds = {c: _axis_type(pts[c]) for c in (x, y)}
    shown = {}
    for c in (x, y):  # a log axis has no 0 (the identity's MACs): draw it below the smallest cost
        v = pts[c].astype(float)
        floor = v[v > 0].min() / 3 if (v > 0).any() else 1.0
        shown[c] = v.where(v > 0, floor) if kinds[c] == "log" else v
    fig = go.Figure()
    for family, grp in pts.groupby("family", sort=True):
        fig.add_trace(go.Scatter(
            x=shown[x][grp.index], y=shown[y][grp.index], mode="markers+text", name=esc(family),
            marker=dict(color=FAMILY_COLORS.get(family, FAMILY_COLORS["other"]), size=10,
                        opacity=[1.0 if f else 0.45 for f in on_front[grp.index]], line=dict(width=1, color="white")),
            text=[esc(m) for m in grp["module"]], textposition="top right", textfont=dict(size=10, color="#333"),
            cliponaxis=False,
            hovertext=[_module_hover(r, x, y) for _, r in grp.iterrows()], hovertemplate="%{hovertext}<extra></extra>",
        ))
    order = front_order(pts[x].to_numpy(float), pts[y].to_numpy(float), on_front)
    if len(order):
        fig.add_trace(go.Scatter(x=shown[x].iloc[order], y=shown[y].iloc[order], mode="lines", line_shape="hv",
                                 line=dict(color="#333", width=1.5, dash="dot"), name="Pareto front", hoverinfo="skip"))
    zero = " (0 drawn at the edge)"
    fig.update_layout(
        title=dict(text=f"{MODULE_COSTS[y]} vs {MODULE_COSTS[x]} · context module alone at {esc(shape)}",
                   font=dict(size=14)),
        height=FIG_HEIGHT, template="plotly_white", margin=dict(l=60, r=20, t=50, b=50), hoverlabel=dict(align="left"),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0, font=dict(size=11)),
        xaxis=_axis(MODULE_COSTS[x] + (zero if kinds[x] == "log" and (pts[x] <= 0).any() else ""), kinds[x]),
        yaxis=_axis(MODULE_COSTS[y] + " (lower is better)" + (zero if kinds[y] == "log" and (pts[y] <= 0).any() else ""),
                    kinds[y]),
    )
    return fig


def _module_hover(row: pd.Series, x: str, y: str) -> str:
    return "<br>".join([
        f"<b>{esc(row['module'])}</b> ({esc(row['family'])}) · options {esc(row['options'])}",
        f"context module alone at {esc(row.get('profile_shape'))}",
        f"{esc(MODULE_COSTS[x])}: {si(row[x])} · {esc(MODULE_COSTS[y])}: {si(row[y])}",
        f"params {si(row.get('params'))} · MACs fvcore {si(row.get('macs_fvcore'))} · torchprofile "
        f"{si(row.get('macs_torchprofile'))} · latency {_ms(row.get('latency_ms'))} · "
        f"peak memory {si(row.get('peak_mem_bytes'), 'B')}",
        f"{esc(row.get('device_name'))} on {esc(row.get('node'))} · run {esc(row.get('runs'))}",
    ])


def module_figures(points: pd.DataFrame, pairs: list[tuple[str, str]]) -> dict[str, go.Figure]:
    """The module's own cost, from the profiling trials, per profile shape: ``module/<shape>/<y>/<x>``."""
    prof = points[points["task"] == "profile"] if "task" in points else points.iloc[:0]
    figures: dict[str, go.Figure] = {}
    for shape, at_shape in prof.groupby(prof["profile_shape"].astype("string").fillna(""), sort=True):
        for x, y in pairs:
            if x in at_shape and y in at_shape and at_shape[x].notna().any() and at_shape[y].notna().any():
                figures[f"module/{shape}/{y}/{x}"] = module_figure(at_shape, x, y, str(shape))
    return figures


def build_figures(results: pd.DataFrame, profile: pd.DataFrame | None = None,
                  references: pd.DataFrame | None = None, axes: list[tuple[str, str]] | None = None,
                  references_name: str = "references.csv") -> dict[str, go.Figure]:
    """Every figure of the report: ``pareto/<data>/<metric>/<model cost>`` (accuracy against the
    whole trained model; ``@<shape>`` appended when a data set has several model input sizes),
    ``module/<profile shape>/<cost>/<cost>`` (the context module alone) and ``scaling/<cost>``.

    ``results`` follows the run directory's results.parquet schema; ``profile`` its profile.parquet
    (sweep rows feed the scaling plots); ``references`` a references table (``references_name``
    names it in the figures); ``axes`` the suite's ``pareto:`` (x, y) pairs, None for the defaults.
    """
    results = normalise_results(results)
    points = aggregate_seeds(results)
    accuracy, module = split_axes(axes)
    figures = accuracy_figures(points, accuracy, references, references_name)
    figures.update(module_figures(points, module))
    families = dict(zip(results["module"].astype(str), results["family"].astype(str)))
    figures.update(scaling_figures(profile, families))
    return figures
