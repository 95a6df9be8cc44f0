"""``hambench compare --html``: the comparison of two runs as a self-contained page: one section
with a sortable table per data set, every configuration and metric (hambench.stats.compare_runs),
the verdicts of the headline metric counted at the top."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hambench.io import atomic_write_text
from hambench.reports.html import CSS, SORT_JS
from hambench.reports.markup import e, number, table
from hambench.stats import data_title, format_mean_ci, options_label

VERDICT_CLASS = {"worse": "bad", "better": "good"}


def compare_section(compared: pd.DataFrame, run_a: str, run_b: str, alpha: float) -> str:
    """The comparison of run B with run A (``compare_runs``' table) as one report section."""
    headline = compared[compared["headline"].astype(bool)]
    counts = ", ".join(f"{n} {e(v)}" for v, n in headline["verdict"].value_counts().items())
    worse = int((headline["verdict"] == "worse").sum())
    out = [
        "<section id='compare'><h2>Run B against run A</h2>",
        f"<p>A: <code>{e(run_a)}</code><br>B: <code>{e(run_b)}</code></p>",
        f"<p><b>{len(headline)} configurations on their headline metric: {counts}.</b> "
        + (f"<b class='bad'>{worse} regression(s).</b>" if worse else "No regression.")
        + "</p>",
        f"<p class='muted'>Mean ± 95% CI over seeds in each run; change = B − A; p: Welch's two-sided "
        f"t-test; verdict at {alpha:g} in the metric's direction. P(B better): the share of pairs of seeds "
        "in which B's beats A's, with its 95% bootstrap interval (docs/statistics.md).</p>",
    ]
    columns = ["module", "options", "metric", "A", "B", "change", "p", "P(B better) [95% CI]", "verdict"]
    keys = [k for k in ("task", "data", "data_options", "arm") if k in compared]
    for _, grp in compared.groupby(keys, sort=False, dropna=False):
        first = grp.iloc[0]
        out.append(f"<h3>{e(first['task'])} on {e(data_title(first['data'], first.get('data_options')))}</h3>")
        out.append(table(columns, [_row(r) for _, r in grp.iterrows()], sortable=True))
    return "\n".join(out + ["</section>"])


def _row(r: pd.Series) -> list[tuple[str, object]]:
    p_better = number(r["p_b_better"])
    interval = (
        f"{p_better:.2f} <span class='muted'>[{r['p_b_better_low']:.2f}, {r['p_b_better_high']:.2f}]</span>"
        if p_better is not None
        else "-"
    )
    verdict = str(r["verdict"])
    return [
        (e(r["module"]), None),
        (e(options_label(str(r["module"]), r.get("options"))), None),
        (e(r["metric"]) + (" *" if r["headline"] else ""), None),
        (e(format_mean_ci(r["mean_a"], r["ci_half_a"], int(r["n_a"]))), number(r["mean_a"])),
        (e(format_mean_ci(r["mean_b"], r["ci_half_b"], int(r["n_b"]))), number(r["mean_b"])),
        ("-" if number(r["change"]) is None else f"{r['change']:+.3g}", number(r["change"])),
        ("-" if number(r["p_value"]) is None else f"{r['p_value']:.3g}", number(r["p_value"])),
        (interval, p_better),
        (f"<span class='{VERDICT_CLASS.get(verdict, '')}'>{e(verdict)}</span>", None),
    ]


def write_compare_page(path: Path, compared: pd.DataFrame, run_a: str, run_b: str, alpha: float) -> Path:
    """The section as a self-contained HTML page (the report's style), written atomically."""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hambench compare</title><style>{CSS}
.bad {{ color: #b2182b; }} .good {{ color: #1b7837; }}</style></head>
<body><h1>hambench compare</h1>
{compare_section(compared, run_a, run_b, alpha)}
<script>{SORT_JS}</script>
</body></html>
"""
    return atomic_write_text(path, page)
