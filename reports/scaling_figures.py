"""Cost against resolution: MACs, latency and memory of each context module against n = H*W on
log-log axes, from the profiling trials' n-sweep, with the exponent each sweep fits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from hambench.reports.style import FIG_HEIGHT, axis, esc
from hambench.results import with_macs
from hambench.scaling import LATENCY_FLOOR_MS, fit_sweep
from hambench.shapes import pixels

__all__ = ["scaling_figures"]

SCALING = [("macs", "MACs"), ("latency_ms", "latency (ms)"), ("peak_mem_bytes", "peak memory (bytes)")]


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
    sweep["n"] = sweep["shape"].map(pixels) if "shape" in sweep else sweep["sweep_size"].astype(float) ** 2
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
            fig.add_trace(
                go.Scatter(
                    x=grp["n"],
                    y=grp[col],
                    mode="lines+markers",
                    name=f"{label}  {fit.label() if fit else 'no fit'}",
                    line=dict(dash=dashes.get(families.get(module, "other"), "dashdot"), color=color[key]),
                    marker=dict(size=7, symbol=["circle" if n in used else "circle-open" for n in grp["n"]]),
                    hovertemplate=f"{label}<br>n=%{{x:,}}<br>{title}: %{{y:.4s}}<extra></extra>",
                )
            )
        if col == "latency_ms":
            fig.add_hline(y=LATENCY_FLOOR_MS, line=dict(dash="dot", color="#999", width=1))
            # On a log axis an annotation's y is log10 of the value (add_hline's own label misplaces it).
            fig.add_annotation(
                text=f"timing floor {LATENCY_FLOOR_MS:g} ms",
                xref="paper",
                x=1,
                xanchor="right",
                y=math.log10(LATENCY_FLOOR_MS),
                yanchor="bottom",
                showarrow=False,
                font=dict(size=10, color="#777"),
            )
        fig.update_layout(
            title=dict(text=f"{title} vs n = H·W", font=dict(size=14)),
            height=FIG_HEIGHT + 60,
            template="plotly_white",
            margin=dict(l=60, r=20, t=50, b=50),
            xaxis=axis("n = H·W (pixels)", "log"),
            yaxis=axis(title, "log"),
            legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, font=dict(size=11)),
        )
        figures[f"scaling/{col}"] = fig
    return figures
