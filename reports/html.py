"""One self-contained HTML file per report: Plotly's JavaScript inlined once, every figure, the
module cost table, the published references, run metadata and failed trials. Opens offline.

All text from a suite, a plugin or a run (module names, options, errors, meta.json) goes through
``markup.e``; the figures escape their own labels (``style.esc``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import plotly
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from hambench.io import atomic_write_text
from hambench.reports.aggregate import aggregate_section
from hambench.reports.artifacts import artifacts_sections
from hambench.reports.figures import build_figures
from hambench.reports.improvement import improvement_section
from hambench.reports.levels import levels_section
from hambench.reports.markup import e, figure_div, number, table
from hambench.reports.runs import Runs, load_runs, run_axes, run_references
from hambench.reports.tuning import tuning_section
from hambench.results import with_macs
from hambench.stats import (
    ARM_TITLES,
    data_title,
    format_mean_ci,
    format_rank,
    improvements,
    options_label,
    summarize,
    tuned_label,
)
from hambench.tasks import PROFILE, default_fronts
from hambench.units import si

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1500px;
       padding: 0 24px 48px; color: #222; }
h1 { font-size: 22px; margin: 20px 0 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 18px 0 6px; } .muted { color: #666; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(620px, 1fr)); gap: 12px; }
.grid3 { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }
.card { border: 1px solid #e3e3e3; border-radius: 6px; padding: 4px; background: #fff; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; } table.sortable th:after { content: " \\2195"; color: #aaa; }
pre { white-space: pre-wrap; margin: 0; font-size: 12px; max-height: 16em; overflow: auto; }
.scroll { overflow-x: auto; }
"""

# Click a header to sort its column; numbers sort numerically (cells carry the raw value in data-v).
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(table => {
  table.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
    const asc = th.dataset.dir !== "asc";
    table.querySelectorAll("th").forEach(h => delete h.dataset.dir);
    th.dataset.dir = asc ? "asc" : "desc";
    const key = td => { const v = td.dataset.v ?? td.textContent; const x = Number(v);
                        return v !== "" && !isNaN(x) ? [0, x] : [1, v]; };
    const cmp = (a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
    const rows = [...table.tBodies[0].rows];
    rows.sort((a, b) => (asc ? 1 : -1) * cmp(key(a.cells[col]), key(b.cells[col])));
    rows.forEach(r => table.tBodies[0].appendChild(r));
  }));
});
"""


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


RANKING_RULE = (
    "Mean ± half width of the 95% confidence interval over seeds (Student t). Rank = 1 + the number of "
    "configurations of the same task, data set and metric that are significantly better (Welch's "
    "two-sided t-test, 5%): configurations that cannot be told apart share a rank. A configuration with "
    "one seed has no interval and is not ranked. Cost: the whole model where the task measured it "
    "(<code>model_*</code>), else the context module at the profiled shape."
)


def _ranking_cost_columns(rows: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(column, header, unit) of the costs shown: the whole model's where measured, else the module's."""

    def have(col: str) -> bool:
        return col in rows and pd.to_numeric(rows[col], errors="coerce").notna().any()

    out = []
    for model, module, name, unit in (("model_macs", "macs", "MACs", ""), ("model_params", "params", "params", "")):
        if have(model):
            out.append((model, f"model {name}", unit))
        elif have(module):
            out.append((module, f"module {name}", unit))
    return out


def _ranking_table(rows: pd.DataFrame, chosen: bool = False) -> str:
    metric = str(rows["metric"].iloc[0])
    several = [c for c in ("backbone", "head") if c in rows and rows[c].astype(str).nunique() > 1]
    costs = _ranking_cost_columns(rows)
    failed = pd.to_numeric(rows["failed"], errors="coerce").fillna(0).sum() > 0
    columns = [
        "module",
        "family",
        *several,
        "options",
        *(["chosen"] if chosen else []),
        "n",
        f"{metric} (mean ± 95% CI)",
        "rank",
        *(["failed"] if failed else []),
        *(header for _, header, _ in costs),
    ]
    body = []
    for _, r in rows.iterrows():
        n = int(r["n"]) if pd.notna(r["n"]) else 0
        mean = e(format_mean_ci(r["mean"], r["ci_half"], n))
        if n >= 2:  # the interval itself beside mean ± half width
            mean += f" <span class='muted'>[{r['ci_low']:.4g}, {r['ci_high']:.4g}]</span>"
        body.append(
            [
                (e(r["module"]), None),
                (e(r["family"]), None),
                *((e(r[c]), None) for c in several),
                (f"<span title='{e(r['options'])}'>{e(options_label(str(r['module']), r['options']))}</span>", None),
                *([(e(tuned_label(r.get("tuned"))), None)] if chosen else []),
                (e(n), n),
                (mean, number(r["mean"])),
                (e(format_rank(r["rank"], bool(r["tied"]))), number(r["rank"])),
                *([(e(int(r["failed"])), int(r["failed"]))] if failed else []),
                *((e(si(number(r.get(col)), unit)), number(r.get(col))) for col, _, unit in costs),
            ]
        )
    return table(columns, body, sortable=True)


def ranking_section(summary: pd.DataFrame) -> str:
    """The ranking tables at the top of the report: per task, data set and accuracy metric (the
    headline first), each configuration's n, mean ± 95 % CI, rank with ties and cost, from the
    runs' summary (hambench.stats.summarize). Every metric: two metrics of one task can disagree."""
    rows = summary[summary["metric"].fillna("") != ""] if not summary.empty else summary
    out = ['<section id="ranking"><h2>Ranking</h2>']
    if rows.empty:
        out.append("<p class='muted'>No accuracy metric in these runs: nothing to rank (module costs below).</p>")
        return "\n".join(out + ["</section>"])
    out.append(f"<p class='muted'>{RANKING_RULE}</p>")
    rows = rows.assign(arm=rows["arm"].astype("string").fillna("") if "arm" in rows else "")
    rows = rows.assign(data=[data_title(d, o) for d, o in zip(rows["data"], rows.get("data_options", ""))])
    for (task, data, arm, metric), grp in rows.groupby(["task", "data", "arm", "metric"], sort=False, dropna=False):
        better = "higher" if grp["sense"].iloc[0] == "max" else "lower"
        out.append(f"<h3>{e(task)} on {e(data)}{ARM_TITLES.get(str(arm), '')}: {e(metric)} ({better} is better)</h3>")
        out.append(_ranking_table(grp, chosen=arm == "tuned"))
    return "\n".join(out + ["</section>"])


def _axis_notes(notes: Iterable[str]) -> str:
    """The suite axes that were not drawn, and why (one line each)."""
    return "".join(f"<p class='muted'>{e(n)}</p>" for n in notes)


def pareto_section(figures: dict[str, go.Figure], axis_notes: Iterable[str] = ()) -> str:
    keys = [k for k in figures if k.startswith("pareto/")]
    if not keys:
        return (
            "<h2>Accuracy vs cost</h2><p class='muted'>No successful trial in these runs has both an accuracy "
            f"metric ({e(', '.join(default_fronts()))}) and a whole-model cost (<code>model_*</code>: MACs, params, "
            "latency, peak memory of the trained model, measured by each training trial; runs made before "
            "hambench measured them have none): nothing to put on a Pareto front.</p>" + _axis_notes(axis_notes)
        )
    out = [
        "<h2>Accuracy vs cost of the whole model: Pareto fronts</h2>",
        "<p class='muted'>Mean over seeds with 95% confidence intervals (Student t) as error bars, the "
        "numbers of the ranking table; a configuration with one seed has no error bar (its hover says so). "
        "Colour = module family, marker = backbone. "
        "The dotted step line joins the non-dominated configurations (labelled); dominated ones are dimmed. "
        "The cost is the whole trained model's (<code>model_*</code>: measured in its trial, batch 1, "
        "inference, at its training crop; a GAN's generator at its output size), not the context module's, "
        "which has its own view below. Hollow diamonds are published whole models, drawn only on a front of "
        "the same task, data set and metric (MACs only at the same input size); each front says in one line "
        "what it shows of them. Click a legend entry to hide it.</p>",
        _axis_notes(axis_notes),
    ]
    groups: dict[tuple[str, str], list[str]] = {}
    for k in keys:
        data, metric, _cost = k.removeprefix("pareto/").rsplit("/", 2)  # a data name may hold "/"
        groups.setdefault((data, metric), []).append(k)
    for (data, metric), ks in groups.items():
        out.append(f"<h3>{e(metric)} on {e(data)}</h3><div class='grid'>")
        out += [figure_div(figures[k]) for k in ks]
        out.append("</div>")
    return "\n".join(out)


def _figures_section(figures: dict[str, go.Figure], prefix: str, intro: str, *, empty: str, grid: str) -> str:
    """``intro`` (a heading and its prose), then the figures whose keys start with ``prefix`` in a
    grid of CSS class ``grid``; ``empty`` when there is none."""
    keys = [k for k in figures if k.startswith(prefix)]
    if not keys:
        return empty
    return intro + f"<div class='{grid}'>" + "".join(figure_div(figures[k]) for k in keys) + "</div>"


def module_section(figures: dict[str, go.Figure]) -> str:
    """The context module's own cost at the profile shape: cost against cost, no accuracy."""
    intro = (
        "<h2>The context module alone: cost at the profile shape</h2><p class='muted'>What the context "
        "module costs by itself, measured by its profiling trial on a random input of the profile shape "
        "(B×C×H×W), apart from any backbone or head; both axes lower is better, the dotted line joins the "
        "modules no other beats on both. No accuracy here: a trained model's accuracy belongs to the whole "
        "model's cost (the fronts above).</p>"
    )
    return _figures_section(figures, "module/", intro, empty="", grid="grid")


def scaling_section(figures: dict[str, go.Figure]) -> str:
    """Each module's cost against n = H·W, and the exponents fitted to it."""
    from hambench.scaling import LATENCY_FLOOR_MS, MAX_SPREAD

    heading = "<h2>Scaling with resolution</h2>"
    intro = heading + (
        "<p class='muted'>Module cost against n = H·W on log-log axes; "
        "the legend gives each module's fitted exponent k of cost ∝ n<sup>k</sup> "
        "(1 = linear like Hamburger's O(ndr), 2 = quadratic like self-attention's n×n map), the range of n "
        "it was fitted over and its R². Latency is fitted only over sizes above the timing floor "
        f"(median ≥ {LATENCY_FLOOR_MS:g} ms and IQR/median &lt; {MAX_SPREAD:.0%}; hollow markers are the "
        "sizes left out) and needs three of them; with fewer the legend says <i>no fit</i> and why. MACs and "
        "memory are exact counts: every size counts, two suffice.</p>"
    )
    empty = heading + "<p class='muted'>No n-sweep rows in profile.parquet.</p>"
    return _figures_section(figures, "scaling/", intro, empty=empty, grid="grid3")


def _cost_rows(runs: Runs) -> pd.DataFrame:
    """Module cost rows at the profiled shape: profile.parquet without its sweep rows, else the
    results rows of profile trials."""
    prof = runs.profile
    if prof is not None:
        if "sweep_size" in prof:
            prof = prof[prof["sweep_size"].isna()]
        if not prof.empty:
            return with_macs(prof)
    res = runs.results[runs.results["task"] == PROFILE]
    return with_macs(res.rename(columns={"profile_shape": "shape"}))


def _ops_cell(ops: Any) -> str:
    """The ops a counter skipped, folded: a count that opens to the list (it can be long)."""
    if isinstance(ops, str):
        try:
            ops = json.loads(ops)
        except json.JSONDecodeError:
            return e(ops)
    if ops is None or (pd.api.types.is_scalar(ops) and pd.isna(ops)):
        return "n/a"
    ops = list(ops)
    if not ops:
        return "none"
    return f"<details><summary>{len(ops)} op(s)</summary>{'<br>'.join(e(o) for o in ops)}</details>"


def cost_section(runs: Runs) -> str:
    rows = _cost_rows(runs)
    if rows.empty:
        return "<h2>Module cost</h2><p class='muted'>No module was profiled in these runs.</p>"
    families = dict(zip(runs.results["module"].astype(str), runs.results["family"].astype(str)))
    columns = [
        "module",
        "family",
        "options",
        "shape",
        "dtype",
        "mode",
        "params",
        "MACs fvcore",
        "MACs torchprofile",
        "FLOPs torch",
        "latency ms",
        "IQR ms",
        "peak memory",
        "uncounted ops",
        "device",
        "threads",
        "torch",
        "node",
    ]

    def cell(row: pd.Series, col: str, unit: str = "", ms: bool = False) -> tuple[str, Any]:
        raw = number(row.get(col))
        if ms and raw is not None:
            return f"{raw:.3f}", raw
        return e(si(raw, unit)), raw

    table_rows = []
    for _, r in rows.iterrows():
        uncounted = r.get("uncounted_ops")
        table_rows.append(
            [
                (e(r.get("module")), None),
                (e(families.get(str(r.get("module")), r.get("family", "n/a"))), None),
                (e(r.get("options", "")), None),
                (e(r.get("shape")), None),
                (e(r.get("dtype")), None),
                (e(r.get("mode")), None),
                cell(r, "params"),
                cell(r, "macs_fvcore"),
                cell(r, "macs_torchprofile"),
                cell(r, "flops_torch"),
                cell(r, "latency_ms", ms=True),
                cell(r, "latency_iqr_ms", ms=True),
                cell(r, "peak_mem_bytes", unit="B"),
                (_ops_cell(uncounted), None),
                (e(r.get("device_name", r.get("device"))), None),
                (e(r.get("threads")), None),
                (e(r.get("torch_version")), None),
                (e(r.get("node")), None),
            ]
        )
    return (
        "<h2>Module cost</h2><p class='muted'>At the profiled shape; click a column header to sort. "
        "MACs are multiply-accumulates (fvcore and torchprofile); FLOPs torch is PyTorch's "
        "FlopCounterMode (2 per MAC).</p>" + table(columns, table_rows, sortable=True)
    )


def references_section(references: pd.DataFrame, names: Iterable[str] = ("references.csv",)) -> str:
    columns = [
        "source",
        "task",
        "dataset",
        "split",
        "method",
        "backbone",
        "module",
        "eval",
        "mIoU",
        "FID",
        "params (M)",
        "GMACs",
        "notes",
    ]
    rows = [
        [
            (f'<a href="{e(r["url"])}">{e(r["source"])}</a>', None),
            (e(r["task"]), None),
            (e(r["dataset"]), None),
            (e(r["split"]), None),
            (e(r["method"]), None),
            (e(r["backbone"]), None),
            (e(r["module"]) if pd.notna(r["module"]) else "", None),
            (e(r["eval"]), None),
            (e(r["mIoU"]), number(r["mIoU"])),
            (e(r["fid"]), number(r["fid"])),
            (e(r["params_M"]), number(r["params_M"])),
            (e(r["gmacs"]), number(r["gmacs"])),
            (e(r["notes"]) if pd.notna(r["notes"]) else "", None),
        ]
        for _, r in references.iterrows()
    ]
    return (
        "<details><summary><b>Published reference points</b> "
        f"({len(references)} rows from {', '.join(f'<code>{e(n)}</code>' for n in names)}; drawn only on fronts "
        "of the same task, data set and metric)</summary>" + table(columns, rows, sortable=True) + "</details>"
    )


def _flatten(meta: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for k, v in meta.items():
        if isinstance(v, dict):
            items += _flatten(v, f"{prefix}{k}.")
        elif not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
            items.append((f"{prefix}{k}", v))
    return items


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colours in Ray's tracebacks


def _error_cell(error: Any) -> str:
    """The exception line, opening to the full traceback."""
    if error is None or (pd.api.types.is_scalar(error) and pd.isna(error)) or not str(error).strip():
        return "n/a"
    text = ANSI.sub("", str(error)).strip()
    last = text.splitlines()[-1]
    if last == text:
        return f"<pre>{e(text)}</pre>"
    return f"<details><summary><code>{e(last)}</code></summary><pre>{e(text)}</pre></details>"


def runs_section(runs: Runs) -> str:
    out = ["<h2>Runs</h2>"]
    for meta in runs.meta:
        out.append(f"<h3>{e(meta.get('suite'))} / {e(meta.get('run_id'))}</h3>")
        out.append(table(["field", "value"], [[(e(k), None), (e(v), None)] for k, v in _flatten(meta)]))
        for key, value in meta.items():  # lists of records, e.g. the nodes with their hardware
            if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
                cols = list(dict.fromkeys(c for x in value for c in x))
                out.append(f"<b>{e(key)}</b>")
                out.append(table(cols, [[(e(x.get(c)), None) for c in cols] for x in value]))
        text = runs.suite_yaml.get(meta["run_dir"])
        if text:
            out.append(f"<details><summary>suite.yaml</summary><pre>{e(text)}</pre></details>")
    res = runs.results
    # A tuning search's sample that ASHA stopped early ("stopped") ended by design: not a failure.
    n_ok, n_stopped = int((res["status"] == "ok").sum()), int((res["status"] == "stopped").sum())
    failed = res[~res["status"].isin(["ok", "stopped"])]
    stopped = f", {n_stopped} search samples stopped early" if n_stopped else ""
    out.append(f"<p>{len(res)} trials: {n_ok} ok{stopped}, {len(failed)} failed.</p>")
    if not failed.empty:
        out.append("<h3>Failed trials</h3>")
        cols = ["trial", "task", "module", "backbone", "data", "seed", "options", "node", "error"]
        out.append(
            table(
                cols,
                [
                    [
                        (e(r["trial_id"]), None),
                        (e(r["task"]), None),
                        (e(r["module"]), None),
                        (e(r["backbone"]), None),
                        (e(r["data"]), None),
                        (e(r["seed"]), None),
                        (e(r["options"]), None),
                        (e(r["node"]), None),
                        (_error_cell(r["error"]), None),
                    ]
                    for _, r in failed.iterrows()
                ],
            )
        )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------


def report_html(
    runs: Runs,
    figures: dict[str, go.Figure],
    references: pd.DataFrame,
    *,
    reference_names: Iterable[str] = ("references.csv",),
    axis_notes: Iterable[str] = (),
) -> str:
    summary = summarize(runs.results)  # once: four sections read it
    suites = ", ".join(dict.fromkeys(str(m.get("suite")) for m in runs.meta))
    generated = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    run_list = ", ".join(f"{m.get('suite')}/{m.get('run_id')}" for m in runs.meta)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hambench report: {e(suites)}</title><style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body>
<h1>hambench report: {e(suites)}</h1>
<p class="muted">{len(runs.meta)} run(s): {e(run_list)} · generated {e(generated)} ·
plotly {e(plotly.__version__)}</p>
{ranking_section(summary)}
{improvement_section(improvements(runs.results), summary)}
{aggregate_section(runs.results)}
{levels_section(summary)}
{tuning_section(runs)}
{artifacts_sections(runs.results, runs.meta, summary)}
{pareto_section(figures, axis_notes)}
{module_section(figures)}
{scaling_section(figures)}
{cost_section(runs)}
{references_section(references, reference_names)}
{runs_section(runs)}
<script>{SORT_JS}</script>
</body></html>
"""


def default_out(run_dirs: list[Path]) -> Path:
    """``RUN_DIR/report.html`` for one run; the runs' common parent folder for several."""
    dirs = [Path(d).resolve() for d in run_dirs]
    return (dirs[0] if len(dirs) == 1 else Path(os.path.commonpath(dirs))) / "report.html"


def render_report(run_dirs: list[Path], out: Path | None = None, figures_format: str | None = None) -> Path:
    """Render one self-contained HTML report from one or more run directories; returns its path.

    The suites' ``pareto:`` pick the axes and their ``references:`` the published points.
    ``figures_format`` (svg, pdf, png) also writes every figure as a file into ``<report>-figures/``
    beside the HTML (``hambench.reports.export``); what that needs is checked first, so a missing
    kaleido or Chromium fails before any work, with one line naming it."""
    from hambench.reports.export import check_export, export_figures, figures_dir

    browser = check_export(figures_format) if figures_format else None
    runs = load_runs([Path(d) for d in run_dirs])
    references, names = run_references(runs)
    axes, notes = run_axes(runs)
    figures = build_figures(runs.results, runs.profile, references, axes=axes, references_name=", ".join(names))
    path = Path(out) if out is not None else default_out(run_dirs)
    atomic_write_text(path, report_html(runs, figures, references, reference_names=names, axis_notes=notes))
    if figures_format:
        export_figures(figures, figures_dir(path), figures_format, browser=browser)
    return path
