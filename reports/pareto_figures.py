"""The accuracy fronts: an accuracy metric against the whole trained model's cost, one point per
configuration (mean over seeds, 95 % intervals as error bars), the non-dominated ones joined.

Like with like: the x axis is the whole trained model's cost (``model_*``, measured in the trial at
its training crop), never the context module's (which has its own view, ``module_figures``); a
published point is drawn only on a front of the same task, data set and metric (MACs only at the
same input size), and every front says in one line what it shows of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hambench.reports.pareto import front_order, pareto_mask
from hambench.reports.style import FAMILY_COLORS, axis, axis_type, esc, front_line, layout
from hambench.schema import MODEL_COSTS, REFERENCE_COSTS
from hambench.shapes import hw_str
from hambench.stats import format_mean_ci, tuned_label
from hambench.tasks import PROFILE, accuracy_columns, metric_sense
from hambench.units import ms, si

__all__ = ["accuracy_figures", "pareto_figure", "point_name"]

BACKBONE_SYMBOLS = ["circle", "square", "triangle-up", "cross", "x", "star", "pentagon", "hexagon", "triangle-down"]
REFERENCE_SYMBOL = "diamond-open"


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
        f"backbone {esc(row['backbone'])}"
        + (f" · head {esc(row['head'])}" if row.get("head") else "")
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
            f"MACs {si(row.get('model_macs'))} · latency {ms(row.get('model_latency_ms'))} · "
            f"peak memory {si(row.get('model_peak_mem_bytes'), 'B')}"
        )
    lines += [
        f"context module alone at {esc(row.get('profile_shape'))}: params {si(row.get('params'))} · "
        f"MACs fvcore {si(row.get('macs_fvcore'))} · torchprofile {si(row.get('macs_torchprofile'))} · "
        f"FLOPs torch {si(row.get('flops_torch'))}",
        f"latency {ms(row.get('latency_ms'))} · peak memory {si(row.get('peak_mem_bytes'), 'B')}",
        f"{esc(row.get('device_name'))} on {esc(row.get('node'))} · run {esc(row.get('runs'))}",
    ]
    if on_front is not None:
        lines.append("<i>on the Pareto front</i>" if on_front else "<i>dominated</i>")
    return "<br>".join(lines)


def _label_sides(x: pd.Series, sense: str, kind: str) -> pd.Series:
    """Where each point's label goes: on the empty side of the front (above-left of a maximised
    metric, below-left of a minimised one), flipped right for points near the left edge."""
    t = np.log10(x.clip(lower=1e-300)) if kind == "log" else x.astype(float)
    span = (t.max() - t.min()) or 1.0
    vertical = "top" if sense == "max" else "bottom"
    return ((t - t.min()) / span).map(lambda f: f"{vertical} {'right' if f < 0.3 else 'left'}")


def _symbol_map(backbones: list[str]) -> dict[str, str]:
    return {b: BACKBONE_SYMBOLS[i % len(BACKBONE_SYMBOLS)] for i, b in enumerate(sorted(backbones))}


def _reference_points(
    references: pd.DataFrame | None,
    task: str,
    data: str,
    metric: str,
    cost: str,
    model_shape: str | None,
    name: str = "references.csv",
) -> tuple[pd.DataFrame, str]:
    """The published rows this front may show, with the cost in raw units, and the one line that
    says what was drawn (or why nothing was).

    Like with like: same task, same data set, same metric; published costs are whole models, so
    only on whole-model axes that the source publishes (MACs, params), and MACs only at the same
    input size (published GMACs are at the published crop)."""
    none = pd.DataFrame()
    if references is None or references.empty or metric not in references.columns:
        return none, f"no published points: {name} has no {metric}"
    same = references[
        (references["task"] == task)
        & (references["dataset"].astype(str) == str(data))
        & pd.to_numeric(references[metric], errors="coerce").notna()
    ]
    if same.empty:
        kind = " (hambench's own synthetic data)" if str(data).startswith("synthetic") else ""
        return none, f"no published points: {name} has no {metric} on {data}{kind}"
    if cost not in REFERENCE_COSTS:
        return none, f"no published points: the {len(same)} published {metric} on {data} give no {MODEL_COSTS[cost]}"
    ref_col, scale = REFERENCE_COSTS[cost]
    refs = same[pd.to_numeric(same[ref_col], errors="coerce").notna()]
    elsewhere = ""
    if cost == "model_macs" and model_shape:  # MACs grow with the input: compare at one size only
        size = hw_str(model_shape)
        at_size = refs[refs["crop"].map(hw_str) == size]
        crops = ", ".join(sorted(set(refs.loc[refs.index.difference(at_size.index), "crop"].map(hw_str)) - {""}))
        if at_size.empty and not refs.empty:
            return none, f"published MACs not drawn: they are at {crops or 'an unstated size'}, these models at {size}"
        if len(at_size) < len(refs):
            elsewhere = f"; {len(refs) - len(at_size)} at {crops or 'an unstated size'} left out"
        refs = at_size
    if refs.empty:
        return none, f"no published points: the published {metric} on {data} give no {MODEL_COSTS[cost]}"
    refs = refs.assign(cost=pd.to_numeric(refs[ref_col]) * scale)
    return refs, (
        f"hollow diamonds: {len(refs)} published whole models on {data} ({name}; hover for source and eval){elsewhere}"
    )


def _add_note(fig: go.Figure, note: str) -> None:
    """One line under the title, inside the figure (it travels with an exported file)."""
    if note:
        fig.add_annotation(
            text=esc(note),
            xref="paper",
            yref="paper",
            x=0,
            y=1.01,
            xanchor="left",
            yanchor="bottom",
            showarrow=False,
            font=dict(size=11, color="#666"),
        )
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


def pareto_figure(
    points: pd.DataFrame, metric: str, cost: str, cost_title: str, refs: pd.DataFrame, title: str
) -> go.Figure:
    """One front: ``metric`` (mean over seeds, 95 % confidence intervals as error bars; none for a
    single seed) against ``cost``.

    One legend entry per (family, backbone): colour is the family, the marker the backbone. Front
    points are labelled and joined by a step line; dominated ones are dimmed. References are hollow.
    The cost axis turns logarithmic when its range calls for it; zero costs (the identity module)
    are then drawn at the axis' left edge, their hover still says 0.
    """
    direction = metric_sense(metric)
    pts = points[points[metric].notna() & points[cost].notna()].reset_index(drop=True)
    on_front = pareto_mask(pts[[cost, metric]].to_numpy(float), ["min", direction])
    symbols = _symbol_map(list(points["backbone"].unique()))
    fig = go.Figure()

    all_x = pd.concat([pts[cost], refs["cost"]]) if not refs.empty else pts[cost]
    x_kind = axis_type(all_x)
    pts["x"] = pts[cost]
    at_edge = x_kind == "log" and (pts["x"] <= 0).any()
    if at_edge:  # a log axis has no 0: draw it below the smallest positive cost
        pts["x"] = pts["x"].where(pts["x"] > 0, all_x[all_x > 0].min() / 3)
    label_side = _label_sides(pts["x"], direction, x_kind)
    for (family, backbone), grp in pts.groupby(["family", "backbone"], sort=True):
        color = FAMILY_COLORS.get(family, FAMILY_COLORS["other"])
        group = f"{family} · {backbone}"
        # A legend-only entry at full opacity; the points themselves come in two traces of the group.
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=esc(group),
                legendgroup=group,
                marker=dict(color=color, symbol=symbols[backbone], size=10),
            )
        )
        # Error bars are the 95 % intervals over seeds; a point with one seed has none, and sits in
        # a trace without error bars (a missing value in an error array would draw a 0-length bar).
        has_ci = pts[metric + "_ci"].notna() if metric + "_ci" in pts else pd.Series(False, index=pts.index)
        for front, with_ci in ((True, True), (True, False), (False, True), (False, False)):
            sub = grp[(on_front[grp.index] == front) & (has_ci[grp.index] == with_ci)]
            if sub.empty:
                continue
            error_y = (
                dict(
                    type="data",
                    array=sub[metric + "_ci"],
                    thickness=1.2,
                    width=3,
                    color=color if front else "rgba(120,120,120,0.35)",
                )
                if with_ci
                else None
            )
            fig.add_trace(
                go.Scatter(
                    x=sub["x"],
                    y=sub[metric],
                    mode="markers+text" if front else "markers",
                    legendgroup=group,
                    showlegend=False,
                    marker=dict(
                        color=color,
                        symbol=symbols[backbone],
                        size=11 if front else 9,
                        opacity=1.0 if front else 0.35,
                        line=dict(width=1, color="white"),
                    ),
                    error_y=error_y,
                    text=[esc(point_name(r)) for _, r in sub.iterrows()] if front else None,
                    textposition=list(label_side[sub.index]) if front else None,
                    textfont=dict(size=10, color="#333"),
                    cliponaxis=False,
                    hovertext=[_hover(r, front) for _, r in sub.iterrows()],
                    hovertemplate="%{hovertext}<extra></extra>",
                )
            )

    order = front_order(pts[cost].to_numpy(float), pts[metric].to_numpy(float), on_front)
    if len(order):
        fig.add_trace(front_line(pts["x"].iloc[order], pts[metric].iloc[order]))

    if not refs.empty:
        fig.add_trace(
            go.Scatter(
                x=refs["cost"],
                y=refs[metric],
                mode="markers",
                name="published (references.csv)",
                marker=dict(
                    symbol=REFERENCE_SYMBOL,
                    size=10,
                    line=dict(width=1.5),
                    color=[FAMILY_COLORS.get(f, FAMILY_COLORS["other"]) for f in refs["family"]],
                ),
                hovertext=[_reference_hover(r) for _, r in refs.iterrows()],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )

    better = "higher is better" if direction == "max" else "lower is better"
    x_title = cost_title + (" (0 drawn at the left edge)" if at_edge else "")
    layout(fig, title, axis(x_title, x_kind), axis(f"{metric} ({better})", "linear"))
    return fig


def accuracy_figures(
    points: pd.DataFrame,
    pairs: list[tuple[str, str]],
    references: pd.DataFrame | None,
    references_name: str = "references.csv",
) -> dict[str, go.Figure]:
    """Accuracy against the whole trained model's cost, per data set (and per model input size when
    a data set has several: MACs at 64x64 and at 512x512 are not one axis)."""
    figures: dict[str, go.Figure] = {}
    trained = points[points["task"] != PROFILE] if "task" in points else points
    for data, at_data in trained.groupby("data", sort=True):
        shape_col = at_data["model_shape"].astype("string").fillna("") if "model_shape" in at_data else None
        shapes = sorted(set(shape_col) - {""}) if shape_col is not None else []
        for shape in shapes or [None]:
            pts = at_data if shape is None else at_data[shape_col == shape]
            suffix = f"@{shape}" if len(shapes) > 1 else ""
            for x, y in pairs:
                if (
                    y not in pts
                    or x not in pts
                    or pts[y].isna().all()
                    or pd.to_numeric(pts[x], errors="coerce").isna().all()
                ):
                    continue
                refs, note = _reference_points(references, str(pts["task"].iloc[0]), data, y, x, shape, references_name)
                where = f"whole model at {esc(shape)}" if shape else "whole model"
                title = f"{y} vs {MODEL_COSTS[x]} of the whole model · {esc(data)}"
                fig = pareto_figure(
                    pts.assign(**{x: pd.to_numeric(pts[x], errors="coerce")}),
                    y,
                    x,
                    f"{MODEL_COSTS[x]}, {where}",
                    refs,
                    title,
                )
                _add_note(fig, note)
                figures[f"pareto/{data}/{y}/{x}{suffix}"] = fig
    return figures
