"""One self-contained HTML file per report: Plotly's JavaScript inlined once, every figure, the
module cost table, the published references, run metadata and failed trials. Opens offline.

All text from a suite, a plugin or a run (module names, options, errors, meta.json) goes through
``html.escape``; the figures escape their own labels (``figures.esc``).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import plotly
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from hambench.io import atomic_write_text
from hambench.reports.figures import build_figures, si, with_macs
from hambench.reports.runs import Runs, load_references, load_runs

# A short modebar (save, zoom, pan, reset) so it does not cover the titles of narrow plots.
PLOT_CONFIG = {
    "displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "svg"},
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d",
                               "toggleSpikelines", "hoverClosestCartesian", "hoverCompareCartesian"],
}

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


def e(value: Any) -> str:
    """Escape any value for HTML text or attributes; missing values read ``n/a``."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "n/a"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # integer columns with gaps come back from parquet as floats
    if hasattr(value, "tolist"):  # list columns come back from parquet as numpy arrays
        value = value.tolist()
    return html.escape(", ".join(map(str, value)) if isinstance(value, list) else str(value))


def _table(columns: list[str], rows: Iterable[list[tuple[str, Any]]], sortable: bool = False) -> str:
    """``rows`` of (display html, sort value or None) cells; display html is already escaped."""
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for shown, raw in row:
            numeric = isinstance(raw, (int, float)) and not isinstance(raw, bool) and pd.notna(raw)
            attrs = f' class="num" data-v="{raw!r}"' if numeric else ""
            cells.append(f"<td{attrs}>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _num(value: Any) -> float | None:
    v = pd.to_numeric(value, errors="coerce")
    return None if pd.isna(v) else float(v)


def _figure_div(fig: go.Figure) -> str:
    return '<div class="card">' + fig.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG) + "</div>"


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


def pareto_section(figures: dict[str, go.Figure]) -> str:
    keys = [k for k in figures if k.startswith("pareto/")]
    if not keys:
        return "<h2>Accuracy vs cost</h2><p class='muted'>No successful trial in these runs has both an accuracy " \
               "metric (mIoU, fid, fid_surrogate) and a cost (MACs, params, latency, peak memory): nothing to " \
               "put on a Pareto front.</p>"
    out = ["<h2>Accuracy vs cost: Pareto fronts</h2>",
           "<p class='muted'>Mean over seeds with std error bars; colour = module family, marker = backbone. "
           "The dotted step line joins the non-dominated configurations (labelled); dominated ones are dimmed. "
           "Hollow diamonds are published numbers from <code>references.csv</code> (whole model at the "
           "published crop size; hover for the source). Click a legend entry to hide it.</p>"]
    groups: dict[tuple[str, str], list[str]] = {}
    for k in keys:
        data, metric, _cost = k.removeprefix("pareto/").rsplit("/", 2)  # a data name may hold "/"
        groups.setdefault((data, metric), []).append(k)
    for (data, metric), ks in groups.items():
        out.append(f"<h3>{e(metric)} on {e(data)}</h3><div class='grid'>")
        out += [_figure_div(figures[k]) for k in ks]
        out.append("</div>")
    return "\n".join(out)


def scaling_section(figures: dict[str, go.Figure]) -> str:
    keys = [k for k in figures if k.startswith("scaling/")]
    if not keys:
        return "<h2>Scaling with resolution</h2><p class='muted'>No n-sweep rows in profile.parquet.</p>"
    return ("<h2>Scaling with resolution</h2><p class='muted'>Module cost against n = H·W on log-log axes; "
            "the legend gives each module's fitted exponent k of cost ∝ n<sup>k</sup> "
            "(1 = linear like Hamburger's O(ndr), 2 = quadratic like self-attention's n×n map).</p>"
            "<div class='grid3'>" + "".join(_figure_div(figures[k]) for k in keys) + "</div>")


def _cost_rows(runs: Runs) -> pd.DataFrame:
    """Module cost rows at the profiled shape: profile.parquet without its sweep rows, else the
    results rows of profile trials."""
    prof = runs.profile
    if prof is not None:
        if "sweep_size" in prof:
            prof = prof[prof["sweep_size"].isna()]
        if not prof.empty:
            return with_macs(prof)
    res = runs.results[runs.results["task"] == "profile"]
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
    columns = ["module", "family", "options", "shape", "dtype", "mode", "params", "MACs fvcore",
               "MACs torchprofile", "FLOPs torch", "latency ms", "IQR ms", "peak memory", "uncounted ops",
               "device", "threads", "torch", "node"]

    def cell(row: pd.Series, col: str, unit: str = "", ms: bool = False) -> tuple[str, Any]:
        raw = _num(row.get(col))
        if ms and raw is not None:
            return f"{raw:.3f}", raw
        return e(si(raw, unit)), raw

    table_rows = []
    for _, r in rows.iterrows():
        uncounted = r.get("uncounted_ops")
        table_rows.append([
            (e(r.get("module")), None), (e(families.get(str(r.get("module")), r.get("family", "n/a"))), None),
            (e(r.get("options", "")), None), (e(r.get("shape")), None), (e(r.get("dtype")), None),
            (e(r.get("mode")), None), cell(r, "params"), cell(r, "macs_fvcore"), cell(r, "macs_torchprofile"),
            cell(r, "flops_torch"), cell(r, "latency_ms", ms=True),
            cell(r, "latency_iqr_ms", ms=True), cell(r, "peak_mem_bytes", unit="B"),
            (_ops_cell(uncounted), None),
            (e(r.get("device_name", r.get("device"))), None), (e(r.get("threads")), None),
            (e(r.get("torch_version")), None), (e(r.get("node")), None),
        ])
    return ("<h2>Module cost</h2><p class='muted'>At the profiled shape; click a column header to sort. "
            "MACs are multiply-accumulates (fvcore and torchprofile); FLOPs torch is PyTorch's "
            "FlopCounterMode (2 per MAC).</p>" + _table(columns, table_rows, sortable=True))


def references_section(references: pd.DataFrame) -> str:
    columns = ["source", "task", "dataset", "split", "method", "backbone", "module", "eval", "mIoU", "FID",
               "params (M)", "GMACs", "notes"]
    rows = [[(f'<a href="{e(r["url"])}">{e(r["source"])}</a>', None), (e(r["task"]), None),
             (e(r["dataset"]), None), (e(r["split"]), None), (e(r["method"]), None), (e(r["backbone"]), None),
             (e(r["module"]) if pd.notna(r["module"]) else "", None), (e(r["eval"]), None),
             (e(r["mIoU"]), _num(r["mIoU"])), (e(r["fid"]), _num(r["fid"])),
             (e(r["params_M"]), _num(r["params_M"])), (e(r["gmacs"]), _num(r["gmacs"])),
             (e(r["notes"]) if pd.notna(r["notes"]) else "", None)]
            for _, r in references.iterrows()]
    return ("<details><summary><b>Published reference points</b> "
            f"({len(references)} rows from <code>hambench/reports/references.csv</code>)</summary>"
            + _table(columns, rows, sortable=True) + "</details>")


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
        out.append(_table(["field", "value"], [[(e(k), None), (e(v), None)] for k, v in _flatten(meta)]))
        for key, value in meta.items():  # lists of records, e.g. the nodes with their hardware
            if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
                cols = list(dict.fromkeys(c for x in value for c in x))
                out.append(f"<b>{e(key)}</b>")
                out.append(_table(cols, [[(e(x.get(c)), None) for c in cols] for x in value]))
        text = runs.suite_yaml.get(meta["run_dir"])
        if text:
            out.append(f"<details><summary>suite.yaml</summary><pre>{e(text)}</pre></details>")
    res = runs.results
    n_ok, n_failed = int((res["status"] == "ok").sum()), int((res["status"] != "ok").sum())
    out.append(f"<p>{len(res)} trials: {n_ok} ok, {n_failed} failed.</p>")
    failed = res[res["status"] != "ok"]
    if not failed.empty:
        out.append("<h3>Failed trials</h3>")
        cols = ["trial", "task", "module", "backbone", "data", "seed", "options", "node", "error"]
        out.append(_table(cols, [[(e(r["trial_id"]), None), (e(r["task"]), None), (e(r["module"]), None),
                                  (e(r["backbone"]), None), (e(r["data"]), None), (e(r["seed"]), None),
                                  (e(r["options"]), None), (e(r["node"]), None),
                                  (_error_cell(r["error"]), None)] for _, r in failed.iterrows()]))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------


def report_html(runs: Runs, figures: dict[str, go.Figure], references: pd.DataFrame) -> str:
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
{pareto_section(figures)}
{scaling_section(figures)}
{cost_section(runs)}
{references_section(references)}
{runs_section(runs)}
<script>{SORT_JS}</script>
</body></html>
"""


def default_out(run_dirs: list[Path]) -> Path:
    """``RUN_DIR/report.html`` for one run; the runs' common parent folder for several."""
    dirs = [Path(d).resolve() for d in run_dirs]
    return (dirs[0] if len(dirs) == 1 else Path(os.path.commonpath(dirs))) / "report.html"


def render_report(run_dirs: list[Path], out: Path | None = None) -> Path:
    """Render one self-contained HTML report from one or more run directories; returns its path."""
    runs = load_runs([Path(d) for d in run_dirs])
    references = load_references()
    figures = build_figures(runs.results, runs.profile, references)
    path = Path(out) if out is not None else default_out(run_dirs)
    atomic_write_text(path, report_html(runs, figures, references))
    return path
