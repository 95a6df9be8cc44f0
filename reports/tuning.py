"""The report's "Tuning" section, for runs of a tuned suite (one with ``tune:``): per module, what
its equal-budget search tried and chose on validation, and what the chosen configuration ("tuned"
arm) scores on test beside the module's defaults ("default" arm).

Read from the results table only (``hambench.results``): the search's rows (phase ``search``, the
validation score under ``val_<metric>``, status ``ok`` / ``stopped`` / ``failed``) and the
retrain's (phase ``retrain``, split ``test``, arm ``tuned`` / ``default``). Intervals and the
tuned-vs-default test are hambench.stats'; every string from a suite or a run is escaped (``e`` in
the tables, ``esc`` in the figures).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from hambench.reports.markup import e, figure_div, table
from hambench.reports.runs import Runs
from hambench.reports.style import esc, layout
from hambench.results import by_arm, json_object, search_rows
from hambench.schema import VAL_PREFIX
from hambench.stats import Interval, format_mean_ci, interval, options_label, significantly_better, tuned_label
from hambench.tasks import metric_sense, task_metrics

# A grid point: what the search tuned, module by module (run_dir: each run did its own search).
POINT_KEYS = ("run_dir", "task", "data", "module", "backbone", "head", "grid_options")
PALETTE = plotly.colors.qualitative.Plotly  # one colour per module, the same in both figures
SPREAD = 0.7  # of the gap between two modules, taken by one module's samples side by side
STATUS_LEGEND = (
    ("ran the whole budget", "circle", 9),
    ("stopped early by ASHA", "circle-open", 9),
    ("chosen (best on validation)", "star", 15),
)

EXPLANATION = (
    "Every module gets the same tuning budget: the same number of sampled configurations (sample 0 is the "
    "module's defaults; the others are the same draws of the suite's search space for every module, with "
    "draws of a module's own options where the suite tunes them) and the same training schedule. Each sample "
    "trains on the train split and is scored on the validation split; among those that ran the whole budget, "
    "the best on validation is chosen. The chosen configuration (<i>tuned</i>) and the defaults (<i>default</i>) "
    "are then trained anew with the suite's seeds and scored on the test split: every test figure here and in "
    "the ranking comes from that retrain, never from the search. ASHA (asynchronous successive halving, Ray "
    "Tune) stops weak samples early, comparing a sample only with the samples of its own module; how many it "
    "stops depends on the scores, so the iterations spent can differ between modules (the table gives their sum over "
    "a module's samples, of what every sample running the whole budget would take). Where the defaults are chosen, "
    "one set of runs serves both arms, and their figures are equal. "
    "Test: mean ± half width of the 95% confidence interval over seeds (Student t), as in the ranking; tuned vs "
    "default: Welch's two-sided t-test at 5%."
)
FIGURES_NOTE = (
    "First: the validation score of every sample, module by module, samples in index order from left to right. "
    "Filled markers ran the whole budget; open markers were stopped early by ASHA, at the iteration their hover "
    "gives, with the score they had then; a star marks the chosen sample; failed samples have no score. A wide "
    "spread of the filled markers means a module is sensitive to its configuration. Second: the best validation "
    "score among the samples that ran the whole budget, against the number of samples tried; where a line is "
    "flat, further samples found nothing better."
)


@dataclass(frozen=True)
class PointTuning:
    """One grid point's search (``search``: its rows, one per sample, in sample order, with ``val``
    the validation score) and its two arms on test."""

    task: str
    data: str
    module: str
    family: str
    backbone: str
    head: str
    grid_options: str
    run: str  # suite/run_id
    metric: str
    default: Interval
    tuned: Interval
    chosen: int | None  # the sample chosen (None: no sample ran the whole budget)
    chosen_values: dict[str, Any]
    defaults: dict[str, Any] | None  # the default arm's values of the tuned keys (None: no default arm)
    budget_iters: float | None  # a whole run's iterations
    search: pd.DataFrame

    @property
    def samples(self) -> int:
        return len(self.search)

    @property
    def completed(self) -> pd.DataFrame:
        return self.search[self.search["status"] == "ok"]

    @property
    def iters_spent(self) -> float:
        return float(pd.to_numeric(self.search["iters"], errors="coerce").sum())

    def is_defaults(self, sample: int | None, values: dict[str, Any]) -> bool:
        """Whether a sample's values are the defaults: the default arm's, else (no default arm) sample 0."""
        return values == self.defaults if self.defaults is not None else sample == 0

    @property
    def chosen_is_defaults(self) -> bool:
        return self.chosen is not None and self.is_defaults(self.chosen, self.chosen_values)

    @property
    def best_val(self) -> float:
        """The best validation score among the samples that ran the whole budget (NaN: none did)."""
        scores = self.completed["val"].dropna()
        if scores.empty:
            return float("nan")
        return float(scores.max() if metric_sense(self.metric) == "max" else scores.min())


# --- reading the rows ------------------------------------------------------------------------------


def _json(text: Any) -> dict[str, Any]:
    """A JSON object column's value as a dict ({} when empty or not an object)."""
    return json_object(text) or {}


def _grid_options(row: pd.Series) -> str:
    """The module options the grid gave (the search's own keys left out: they differ per sample)."""
    given = row.get("options_given")
    given = row.get("options") if given is None or (pd.api.types.is_scalar(given) and pd.isna(given)) else given
    tuned = _json(row.get("tuned"))
    options = _json(given)
    return json.dumps({k: v for k, v in options.items() if k not in tuned}, sort_keys=True, default=str)


def _keyed(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with their grid point's keys as text (POINT_KEYS; an absent column reads "")."""
    rows = rows.copy()
    rows["grid_options"] = [_grid_options(r) for _, r in rows.iterrows()]
    for k in POINT_KEYS:
        rows[k] = rows[k].astype("string").fillna("") if k in rows else ""
    return rows


def _arm_interval(rows: pd.DataFrame, metric: str) -> Interval:
    ok = rows[rows["status"] == "ok"]
    return interval(ok[metric] if metric in ok else [])


def _point(key: tuple[str, ...], search: pd.DataFrame, retrain: pd.DataFrame, metric: str) -> PointTuning:
    fields = dict(zip(POINT_KEYS, key))
    val = VAL_PREFIX + metric
    search = (
        search.assign(
            sample=pd.to_numeric(search["sample"], errors="coerce"),
            val=pd.to_numeric(search[val], errors="coerce") if val in search else np.nan,
        )
        .sort_values("sample", kind="stable")
        .reset_index(drop=True)
    )
    tuned_rows = retrain[retrain["arm"] == "tuned"]
    default_rows = retrain[retrain["arm"] == "default"]
    chosen_samples = pd.to_numeric(tuned_rows["sample"], errors="coerce").dropna()
    chosen = int(chosen_samples.iloc[0]) if not chosen_samples.empty else None
    chosen_values = _json(tuned_rows["tuned"].iloc[0]) if not tuned_rows.empty else {}
    defaults = _json(default_rows["tuned"].iloc[0]) if not default_rows.empty else None
    full = pd.to_numeric(search.loc[search["status"] == "ok", "iters"], errors="coerce").dropna()
    if full.empty:
        full = pd.to_numeric(retrain["iters"], errors="coerce").dropna()
    first = search.iloc[0]
    return PointTuning(
        task=fields["task"],
        data=fields["data"],
        module=fields["module"],
        family=str(first.get("family", "")),
        backbone=fields["backbone"],
        head=fields["head"],
        grid_options=fields["grid_options"],
        run=f"{first.get('suite')}/{first.get('run_id')}",
        metric=metric,
        default=_arm_interval(default_rows, metric),
        tuned=_arm_interval(tuned_rows, metric),
        chosen=chosen,
        chosen_values=chosen_values,
        defaults=defaults,
        budget_iters=float(full.max()) if not full.empty else None,
        search=search,
    )


def tuning_points(results: pd.DataFrame, selected_on: dict[str, str] | None = None) -> list[PointTuning]:
    """One PointTuning per grid point of the runs' tuning searches, in the order of the results
    table; the metric is the one the search selected on: ``selected_on[run_dir]`` (a suite's
    ``tune.metric``), else the task's headline."""
    search = search_rows(results)
    if search.empty:
        return []
    search = _keyed(search)
    retrain = _keyed(by_arm(results[results["phase"].astype("string").fillna("") == "retrain"]))
    keys = list(POINT_KEYS)
    retrain_by_key = {k: g for k, g in retrain.groupby(keys, sort=False)} if not retrain.empty else {}
    points = []
    for key, grp in search.groupby(keys, sort=False):
        metrics = task_metrics(str(key[POINT_KEYS.index("task")]))
        if not metrics:  # a task this hambench does not know: no metric to read
            continue
        run_dir = str(grp["run_dir"].iloc[0]) if "run_dir" in grp else ""
        metric = (selected_on or {}).get(run_dir) or metrics[0]
        points.append(_point(key, grp, retrain_by_key.get(key, retrain.iloc[:0]), metric))
    return points


# --- the table -------------------------------------------------------------------------------------


def _arm_cell(iv: Interval) -> tuple[str, Any]:
    if iv.n == 0:
        return "n/a", None
    return f"{e(format_mean_ci(iv.mean, iv.half_width, iv.n))} <span class='muted'>n={iv.n}</span>", iv.mean


def _difference(p: PointTuning) -> float:
    return p.tuned.mean - p.default.mean if p.tuned.n and p.default.n else float("nan")


def _verdict(p: PointTuning) -> str:
    """Whether the tuned arm is significantly better or worse than the defaults on test."""
    direction = metric_sense(p.metric)
    if significantly_better(p.tuned, p.default, direction):
        return "tuned better"
    if significantly_better(p.default, p.tuned, direction):
        return "defaults better"
    if p.tuned.n >= 2 and p.default.n >= 2:
        return "no significant difference"
    return "-"  # fewer than two seeds on a side: nothing to test


def chosen_text(p: PointTuning) -> str:
    """``defaults (sample 0)``, ``sample 3: lr=0.073 weight_decay=0.00021``, or why none was chosen."""
    if p.chosen is None:
        return "none: no sample ran the whole budget"
    if p.chosen_is_defaults:
        return f"defaults (sample {p.chosen})"
    return f"sample {p.chosen}: {tuned_label(p.chosen_values)}"


def _spent_cell(p: PointTuning) -> tuple[str, Any]:
    spent = p.iters_spent
    text = f"{spent:,.0f}"
    if p.budget_iters:
        text += f" <span class='muted'>of {p.samples * p.budget_iters:,.0f}</span>"
    return text, spent


HEADERS = {"backbone": "backbone", "head": "head", "grid_options": "options", "run": "run"}


def _several(points: list[PointTuning]) -> list[str]:
    """The point fields (HEADERS) that tell two points of one module apart: shown beside the module."""
    values: dict[str, dict[str, set[str]]] = {f: {} for f in HEADERS}
    for p in points:
        for f in HEADERS:
            values[f].setdefault(p.module, set()).add(getattr(p, f))
    return [f for f in HEADERS if any(len(v) > 1 for v in values[f].values())]


def _field(p: PointTuning, field: str) -> str:
    """A point field as shown: the grid's options as ``k=v`` (hambench.stats.options_label)."""
    return options_label(p.module, p.grid_options) if field == "grid_options" else getattr(p, field)


def tuning_table(points: list[PointTuning]) -> str:
    """One row per grid point: both arms on test, the difference, the chosen configuration, the search."""
    metric = points[0].metric
    several = _several(points)
    columns = [
        "module",
        *(HEADERS[f] for f in several),
        f"default: test {metric} (mean ± 95% CI)",
        f"tuned: test {metric} (mean ± 95% CI)",
        "tuned − default",
        "tuned vs default (Welch, 5%)",
        "chosen on validation",
        "samples",
        "ran the whole budget",
        "iterations spent",
        f"best val {metric}",
    ]
    body = []
    for p in points:
        diff, best = _difference(p), p.best_val
        failed = int((p.search["status"] == "failed").sum())
        body.append(
            [
                (e(p.module), None),
                *((e(_field(p, f)), None) for f in several),
                _arm_cell(p.default),
                _arm_cell(p.tuned),
                ("n/a" if np.isnan(diff) else e(f"{diff:+.3g}"), None if np.isnan(diff) else diff),
                (e(_verdict(p)), None),
                (e(chosen_text(p)), p.chosen),
                (e(p.samples) + (f" <span class='muted'>({failed} failed)</span>" if failed else ""), p.samples),
                (e(len(p.completed)), len(p.completed)),
                _spent_cell(p),
                ("n/a" if np.isnan(best) else e(f"{best:.4g}"), None if np.isnan(best) else best),
            ]
        )
    return table(columns, body, sortable=True)


# --- the figures -----------------------------------------------------------------------------------


def _labels(points: list[PointTuning]) -> list[str]:
    """Each point's name in the figures: its module, and what else tells it apart (escaped)."""
    several = _several(points)
    return [" · ".join(esc(v) for v in (p.module, *(_field(p, f) for f in several))) for p in points]


def _colors(points: list[PointTuning]) -> list[str]:
    """One colour per point, the same in both figures."""
    return [PALETTE[i % len(PALETTE)] for i in range(len(points))]


def _sample_hover(p: PointTuning, label: str, r: pd.Series, chosen: bool) -> str:
    sample = int(r["sample"]) if pd.notna(r["sample"]) else None
    defaults = " (defaults)" if p.is_defaults(sample, _json(r.get("tuned"))) else ""
    name = f"sample {esc(sample)}{defaults}" + (" · <b>chosen</b>" if chosen else "")
    iters = pd.to_numeric(r.get("iters"), errors="coerce")
    reached = "?" if pd.isna(iters) else f"{iters:.0f}"
    of = f" of {p.budget_iters:.0f}" if p.budget_iters else ""
    if r["status"] == "ok":
        ran = f"ran the whole budget ({reached} iterations)"
    else:
        ran = f"stopped by ASHA at iteration {reached}{of}: its score then"
    return "<br>".join(
        [
            f"<b>{label}</b> · {name}",
            esc(tuned_label(r.get("tuned"))),
            f"val {esc(p.metric)}: {r['val']:.4g} · {ran}",
            f"trained with seed {esc(r.get('seed'))} · trial {esc(r.get('trial_id'))}",
        ]
    )


def _metric_axis(metric: str) -> dict:
    better = "higher" if metric_sense(metric) == "max" else "lower"
    return dict(title=f"{esc(metric)} on the validation split ({better} is better)")


def sensitivity_figure(points: list[PointTuning], title: str) -> go.Figure:
    """The validation score of every sample (y) per module (x, samples side by side in index
    order): completed filled, stopped open, the chosen one a star; failed samples have no score."""
    colors, labels = _colors(points), _labels(points)
    fig = go.Figure()
    for name, symbol, size in STATUS_LEGEND:  # legend-only entries: what a marker's shape means
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="markers", name=name, marker=dict(symbol=symbol, size=size, color="#555")
            )
        )
    for i, (p, color, label) in enumerate(zip(points, colors, labels)):
        scored = p.search[p.search["val"].notna()]
        width = SPREAD / max(p.samples, 1)
        x = i + (scored["sample"] - (p.samples - 1) / 2) * width
        for status, symbol, size in (("ok", "circle", 9), ("stopped", "circle-open", 9)):
            mine = scored["status"] == status
            fig.add_trace(
                go.Scatter(
                    x=x[mine],
                    y=scored.loc[mine, "val"],
                    mode="markers",
                    name=label,
                    showlegend=False,
                    legendgroup=status,
                    marker=dict(symbol=symbol, size=size, color=color, line=dict(width=1.5)),
                    hovertext=[_sample_hover(p, label, r, r["sample"] == p.chosen) for _, r in scored[mine].iterrows()],
                    hovertemplate="%{hovertext}<extra></extra>",
                )
            )
        chosen = scored[(scored["sample"] == p.chosen) & (scored["status"] == "ok")]
        if not chosen.empty:
            fig.add_trace(
                go.Scatter(
                    x=x[chosen.index],
                    y=chosen["val"],
                    mode="markers",
                    name=f"{label}: chosen",
                    showlegend=False,
                    legendgroup="chosen",
                    marker=dict(symbol="star", size=15, color=color, line=dict(width=1.5, color="#111")),
                    hovertext=[_sample_hover(p, label, r, True) for _, r in chosen.iterrows()],
                    hovertemplate="%{hovertext}<extra></extra>",
                )
            )
    ticks = dict(tickmode="array", tickvals=list(range(len(points))), ticktext=labels)
    layout(
        fig,
        title,
        dict(title="module (its samples in index order, left to right)", zeroline=False, **ticks),
        _metric_axis(points[0].metric),
    )
    return fig


def best_so_far(p: PointTuning) -> pd.Series:
    """After each number of samples tried (1, 2, ...), the best validation score of those that ran
    the whole budget (NaN until one has): the search's choice had it stopped there."""
    running = p.search["val"].where(p.search["status"] == "ok").expanding()  # NaN (stopped, failed) skipped
    best = running.max() if metric_sense(p.metric) == "max" else running.min()
    return pd.Series(best.to_numpy(), index=np.arange(1, len(best) + 1))


def best_so_far_figure(points: list[PointTuning], title: str) -> go.Figure:
    """Best validation score so far against the number of samples tried, one line per module."""
    fig = go.Figure()
    for p, color, label in zip(points, _colors(points), _labels(points)):
        best = best_so_far(p)
        fig.add_trace(
            go.Scatter(
                x=best.index,
                y=best.to_numpy(),
                mode="lines+markers",
                line_shape="hv",
                name=label,
                line=dict(color=color),
                marker=dict(size=6),
                hovertext=[
                    f"{label}<br>best val {esc(p.metric)} after {k} samples: "
                    + ("none ran the whole budget yet" if np.isnan(v) else f"{v:.4g}")
                    for k, v in best.items()
                ],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    layout(fig, title, dict(title="samples tried", dtick=1), _metric_axis(points[0].metric))
    return fig


# --- the section -----------------------------------------------------------------------------------


def tuning_figures(points: list[PointTuning], data: str) -> dict[str, go.Figure]:
    """The section's two figures for the grid points of one task and data set."""
    where = esc(data)
    return {
        "sensitivity": sensitivity_figure(points, f"Validation {esc(points[0].metric)} of every sample · {where}"),
        "best_so_far": best_so_far_figure(points, f"Best validation {esc(points[0].metric)} so far · {where}"),
    }


def _selected_on(runs: Runs) -> dict[str, str]:
    """Run directory -> its suite's ``tune.metric``, where the suite names one."""
    import yaml

    chosen = {}
    for run_dir, text in runs.suite_yaml.items():
        try:
            metric = ((yaml.safe_load(text) or {}).get("tune") or {}).get("metric")
        except yaml.YAMLError:
            continue
        if isinstance(metric, str):
            chosen[run_dir] = metric
    return chosen


def tuning_section(runs: Runs) -> str:
    """The report's "Tuning" section ('' when the runs hold no tuning search): per task and data
    set, the table of both arms and the search, and its two figures."""
    points = tuning_points(runs.results, _selected_on(runs))
    if not points:
        return ""
    out = ['<section id="tuning"><h2>Tuning: an equal budget per module</h2>', f"<p class='muted'>{EXPLANATION}</p>"]
    groups: dict[tuple[str, str], list[PointTuning]] = {}
    for p in points:
        groups.setdefault((p.task, p.data), []).append(p)
    for (task, data), grp in groups.items():
        metric = grp[0].metric
        better = "higher" if metric_sense(metric) == "max" else "lower"
        out.append(f"<h3>{e(task)} on {e(data)}: {e(metric)} ({better} is better)</h3>")
        out.append(tuning_table(grp))
        figures = tuning_figures(grp, data)
        out.append(f"<p class='muted'>{FIGURES_NOTE}</p><div class='grid'>")
        out += [figure_div(fig) for fig in figures.values()]
        out.append("</div>")
    return "\n".join(out + ["</section>"])
