"""Seeds to numbers that can be compared: n, mean, std and a 95 % confidence interval per
configuration, and a rank in which configurations that cannot be told apart share a place.

This is the one home of these rules; the run summary (``summary.csv`` and the table printed at the
end of ``hambench run suite``), the report's error bars and its ranking table all call it::

    iv = interval([41.0, 42.5, 40.8])        # Interval(n=3, mean=41.43, std=0.93, low=39.12, high=43.75)
    rank_with_ties([iv_a, iv_b, iv_c], "max") # [1, 1, 3]: a and b cannot be told apart
    summary = summarize(results)              # one row per (configuration, metric) of a results table

The rules (docs/suites.md, "Intervals and ranks"):

- **Interval**: Student t over seeds, ``mean ± t(0.975, n-1) · s / sqrt(n)`` with ``s`` the sample
  std (ddof 1). One seed has no spread to estimate, so no interval: NaN, never a zero-width bar.
- **Significantly better**: Welch's two-sided t-test (unequal variances) at 5 %, and a better mean.
  Welch rather than "non-overlapping intervals": two 95 % intervals that just touch correspond to
  p of about 0.005, so the overlap rule calls far too many real differences ties.
- **Rank** = 1 + the number of configurations significantly better. Ties share a rank, and a rank is
  not transitive (a can tie b, b tie c, while a beats c). Fewer than two seeds: not ranked (NA).
  Ranks compare configurations of one task, data set and metric; no correction for the number of
  comparisons is made, so read a rank as "beaten by that many", not as a proof.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from hambench.results import by_arm, json_object, normalise_results, reported_rows, with_macs
from hambench.schema import MACS, MODEL_COSTS
from hambench.tasks import PROFILE, Sense, metric_sense, task_metrics
from hambench.trial import data_label

CONFIDENCE = 0.95  # of the intervals
ALPHA = 0.05  # of the Welch test behind the ranks

# Which way is better, and the accuracy metrics each task writes (headline first), are the tasks'
# declarations (hambench.tasks.metric_sense, task_metrics): a metric no task declares, and every
# cost, is better lower.
# A configuration: everything about a trial except its seed. ``options`` are the resolved options
# (the values the module was built with), so {} and the defaults spelled out are one configuration;
# ``iters`` keeps a smoke run from pooling with a real one; ``profile_shape`` says where costs were
# measured. ``family`` follows from ``module`` and only rides along.
# ``arm`` and ``tuned`` (a tuned suite's retrain: the chosen configuration or the defaults, and the
# values the search set) keep the two arms apart.
CONFIG_KEYS = (
    "task",
    "data",
    "data_options",
    "module",
    "family",
    "backbone",
    "head",
    "options",
    "iters",
    "profile_shape",
    "arm",
    "tuned",
)
# Ranks compare configurations of one task, data set, metric and arm (a tuned suite ranks its
# chosen configurations against each other, and its defaults against each other).
RANK_WITHIN = ("task", "data", "data_options", "metric", "arm")
# Costs carried into the summary: the module's (measured by its profiling trial; ``macs`` is
# torchprofile's count else fvcore's, hambench.results.with_macs) and the whole model's where the
# task measured it (hambench.schema.MODEL_COSTS).
SUMMARY_MODULE_COSTS = ("params", MACS, "latency_ms", "latency_iqr_ms", "peak_mem_bytes")
SUMMARY_MODEL_COSTS = tuple(MODEL_COSTS)


# --- one configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """Mean and confidence interval of one configuration's seeds. ``low``/``high`` (and ``std``
    for n = 1) are NaN when there is no interval."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and math.isfinite(self.low)


def interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """Student-t interval of the mean of ``values`` (NaN and None dropped: a missing seed)."""
    x = np.asarray(
        [v for v in pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce") if pd.notna(v)], dtype=float
    )
    n = len(x)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Interval(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


def significantly_better(a: Interval, b: Interval, direction: Sense, alpha: float = ALPHA) -> bool:
    """Whether ``a`` beats ``b``: a better mean and Welch's two-sided t-test below ``alpha``.
    Either side with fewer than two seeds cannot be tested: never significant."""
    if a.n < 2 or b.n < 2 or not (math.isfinite(a.mean) and math.isfinite(b.mean)):
        return False
    gap = a.mean - b.mean if direction == "max" else b.mean - a.mean
    if gap <= 0:
        return False
    if a.std == 0 and b.std == 0:  # every seed gave the same value on both sides: the gap is exact
        return True
    p = sps.ttest_ind_from_stats(a.mean, a.std, a.n, b.mean, b.std, b.n, equal_var=False).pvalue
    return bool(p < alpha)


def rank_with_ties(intervals: Sequence[Interval], direction: Sense, alpha: float = ALPHA) -> list[int | None]:
    """1 + the number of configurations significantly better than each; None below two seeds."""
    ranks: list[int | None] = []
    for i, iv in enumerate(intervals):
        if iv.n < 2 or not math.isfinite(iv.mean):
            ranks.append(None)
            continue
        ranks.append(
            1 + sum(significantly_better(other, iv, direction, alpha) for j, other in enumerate(intervals) if j != i)
        )
    return ranks


# --- learning speed ---------------------------------------------------------------------------


def curve_area(iters: Sequence[float], values: Sequence[float]) -> float:
    """The normalised area under a learning curve: the trapezoid integral of ``values`` over
    ``iters`` from the first evaluation to the last, divided by that span. In the metric's own
    units: a run that reached its final score by the first evaluation scores that score; one that
    got there only at the end scores less. Fewer than two evaluations (NaN values dropped, one per
    iteration, the last kept): NaN.

    An area rather than "iterations to a threshold": it uses every evaluation, needs no threshold
    chosen per task or level, and is defined for a run that never reaches a threshold (which
    would be censored)."""
    curve = pd.DataFrame(
        {
            "t": pd.to_numeric(pd.Series(list(iters)), errors="coerce"),
            "v": pd.to_numeric(pd.Series(list(values)), errors="coerce"),
        }
    ).dropna()
    curve = curve.drop_duplicates("t", keep="last").sort_values("t")
    if len(curve) < 2:
        return math.nan
    t, v = curve["t"].to_numpy(float), curve["v"].to_numpy(float)
    area = float(np.sum((v[1:] + v[:-1]) * np.diff(t)) / 2)  # the trapezoid rule (numpy 1.x has no trapezoid)
    return area / float(t[-1] - t[0])


# --- tables -----------------------------------------------------------------------------------


def config_keys(df: pd.DataFrame) -> list[str]:
    """The CONFIG_KEYS this table has (``head`` is written by the tasks that have one)."""
    return [k for k in CONFIG_KEYS if k in df.columns]


def group_configurations(df: pd.DataFrame, keys: Sequence[str] | None = None) -> pd.core.groupby.DataFrameGroupBy:
    """``df`` grouped by configuration; keys compared as text (NaN keys would drop rows)."""
    keys = list(keys) if keys is not None else config_keys(df)
    text = df[keys].astype("string").fillna("")
    return df.groupby([text[k] for k in keys], sort=True, dropna=False)


def _seed_order(grp: pd.DataFrame) -> pd.DataFrame:
    return grp.sort_values("seed", kind="stable") if "seed" in grp.columns else grp


def per_configuration(ok: pd.DataFrame, metrics: Sequence[str], costs: Sequence[str] = ()) -> pd.DataFrame:
    """One row per configuration of ``ok`` (successful trials): its CONFIG_KEYS as text,
    ``n_seeds``, ``seeds`` and, per metric ``m``: ``m`` (the mean), ``m_std``, ``m_n``, ``m_ci_low``,
    ``m_ci_high``, ``m_ci`` (the half width) and ``m_values`` (``[(seed, value), ...]``); per cost
    column its mean over the seeds (they share one profiling trial: the values are equal)."""
    keys = config_keys(ok)
    rows = []
    for key, grp in group_configurations(ok, keys):
        grp = _seed_order(grp)
        seeds = grp["seed"].tolist() if "seed" in grp else [None] * len(grp)
        row: dict = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["n_seeds"] = len(grp)
        row["seeds"] = ", ".join(str(s) for s in seeds)
        for m in metrics:
            values = pd.to_numeric(grp[m], errors="coerce") if m in grp else pd.Series(np.nan, index=grp.index)
            iv = interval(values)
            row.update(
                {
                    m: iv.mean,
                    f"{m}_std": iv.std,
                    f"{m}_n": iv.n,
                    f"{m}_ci_low": iv.low,
                    f"{m}_ci_high": iv.high,
                    f"{m}_ci": iv.half_width,
                    f"{m}_values": [(s, float(v)) for s, v in zip(seeds, values) if pd.notna(v)],
                }
            )
        for c in costs:
            row[c] = pd.to_numeric(grp[c], errors="coerce").mean() if c in grp else np.nan
        rows.append(row)
    columns = [*keys, "n_seeds", "seeds"]
    return pd.DataFrame(rows, columns=columns + [c for c in (rows[0] if rows else {}) if c not in columns])


def reported_metrics(task: str, ok: pd.DataFrame) -> list[str]:
    """The accuracy metrics ``task`` wrote a value for in ``ok``, its headline (the one it is
    ranked on first: mIoU; fid, else fid_surrogate) first. None written (every trial failed): the
    task's first metric, so its configurations still show, with n = 0."""
    metrics = task_metrics(task)
    have = [m for m in metrics if m in ok.columns and pd.to_numeric(ok[m], errors="coerce").notna().any()]
    return have or list(metrics[:1])


SUMMARY_COLUMNS = [
    "task",
    "data",
    "data_options",
    "arm",
    "module",
    "family",
    "backbone",
    "head",
    "options",
    "tuned",
    "iters",
    "metric",
    "sense",
    "headline",
    "n",
    "failed",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "ci_half",
    "rank",
    "tied",
    "seeds",
    "values",
    *SUMMARY_MODULE_COSTS,
    "profile_shape",
    *SUMMARY_MODEL_COSTS,
]


def _failures(results: pd.DataFrame) -> pd.Series:
    """Failed trials per configuration, keyed without ``iters`` and ``profile_shape`` (a trial that
    failed never reported them)."""
    keys = [k for k in config_keys(results) if k not in ("iters", "profile_shape")]
    failed = results[results["status"] != "ok"]
    if failed.empty:
        return pd.Series(dtype="int64")
    return group_configurations(failed, keys).size()


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """The run summary of a results table (``results.parquet`` of one or more runs): one row per
    configuration and accuracy metric with n, mean, std, the 95 % interval, the rank with ties, the
    number of failed trials and the costs (SUMMARY_COLUMNS). A table with no training trial (a
    profile-only suite) gives a cost summary instead: one row per profiled configuration, ``metric``
    empty and no rank.

    ``headline`` marks the metric each task is ranked on first (see ``reported_metrics``): the one
    the terminal table and the report show. Rows are sorted by task, data, metric, rank, mean."""
    # The report's readers too (hambench.results): one schema, and one choice of MAC counter.
    # A search's val scores select, never report; a tuned suite's arms are compared each on its own.
    results = with_macs(normalise_results(by_arm(reported_rows(results))))
    train = results[results["task"] != PROFILE]
    part = train if not train.empty else results
    ok = part[part["status"] == "ok"]
    tasks = [str(t) for t in part["task"].dropna().unique()]
    metrics = {t: reported_metrics(t, ok[ok["task"] == t]) for t in tasks}
    costs = [c for c in (*SUMMARY_MODULE_COSTS, *SUMMARY_MODEL_COSTS) if c in part.columns]
    table = per_configuration(ok, list(dict.fromkeys(m for t in tasks for m in metrics[t])), costs)
    table = _with_all_failed(table, part)

    rows = []
    for _, cfg in table.iterrows():
        base = {k: cfg.get(k) for k in config_keys(part)} | {c: cfg.get(c) for c in costs}
        base |= {"failed": int(cfg.get("failed", 0)), "seeds": cfg.get("seeds", "")}
        task_metrics = metrics.get(str(cfg["task"]), [])
        if not task_metrics:  # profile rows: a cost summary
            rows.append(base | {"metric": "", "headline": True, "n": int(cfg.get("n_seeds", 0))})
        for i, m in enumerate(task_metrics):
            n = cfg.get(f"{m}_n")
            rows.append(
                base
                | {
                    "metric": m,
                    "sense": metric_sense(m),
                    "headline": i == 0,
                    "n": 0 if pd.isna(n) else int(n),
                    "mean": cfg.get(m),
                    "std": cfg.get(f"{m}_std"),
                    "ci_low": cfg.get(f"{m}_ci_low"),
                    "ci_high": cfg.get(f"{m}_ci_high"),
                    "ci_half": cfg.get(f"{m}_ci"),
                    "values": _values_text(cfg.get(f"{m}_values")),
                }
            )
    out = pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)
    if out.empty:
        return out
    for col in ("mean", "std", "ci_low", "ci_high", "ci_half"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    out = add_ranks(out)
    # Best first within each task, data set and metric: by rank, then by mean (unranked last).
    out["_rank"] = out["rank"].astype("Float64").fillna(math.inf)
    out["_mean"] = out["mean"] * np.where(out["sense"] == "max", -1.0, 1.0)
    out["_other"] = [  # the metrics in the order their task declares them (the headline first)
        _metric_order(str(t), str(m)) for t, m in zip(out["task"], out["metric"].fillna(""))
    ]
    out["_arm"] = out["arm"].astype("string").fillna("")  # tuned before default
    out["_arm"] = out["_arm"].map({"tuned": "0", "default": "1"}).fillna(out["_arm"])
    keys = ["task", "data", "data_options", "_arm", "_other", "metric", "_rank", "_mean", "module", "options"]
    out = out.sort_values(keys, na_position="last")
    return out.drop(columns=["_rank", "_mean", "_other", "_arm"]).reset_index(drop=True)


def _metric_order(task: str, metric: str) -> int:
    """Where ``metric`` comes among ``task``'s declared metrics (undeclared: after them)."""
    declared = task_metrics(task)
    return declared.index(metric) if metric in declared else len(declared)


def _values_text(values: object) -> str:
    """``[(0, 41.2), (1, 40.9)]`` -> ``"0: 41.2; 1: 40.9"``: every seed's value, for the CSV."""
    if not isinstance(values, list):
        return ""
    return "; ".join(f"{s}: {v:.6g}" for s, v in values)


def _with_all_failed(table: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """``failed`` per configuration, and a row (n = 0) for a configuration whose every trial failed."""
    failures = _failures(results)
    keys = [k for k in config_keys(results) if k not in ("iters", "profile_shape")]
    table = table.copy()
    if failures.empty:
        table["failed"] = 0
        return table
    index = [tuple(r) if len(keys) > 1 else r[0] for r in table[keys].astype("string").fillna("").to_numpy()]
    table["failed"] = [int(failures.get(i, 0)) for i in index]
    missing = [k for k in failures.index if k not in set(index)]
    extra = pd.DataFrame(
        [
            dict(zip(keys, k if isinstance(k, tuple) else (k,))) | {"n_seeds": 0, "failed": int(failures[k])}
            for k in missing
        ]
    )
    return pd.concat([table, extra], ignore_index=True) if not extra.empty else table


def add_ranks(summary: pd.DataFrame) -> pd.DataFrame:
    """``rank`` (1 + configurations significantly better; NA below two seeds) and ``tied`` (another
    configuration of the same task, data and metric shares the rank) for a summary table."""
    summary = summary.copy()
    summary["rank"] = pd.array([pd.NA] * len(summary), dtype="Int64")
    summary["tied"] = False
    ranked = summary[summary["metric"].fillna("") != ""]
    within = [k for k in RANK_WITHIN if k in ranked.columns]
    for key, grp in ranked.groupby([ranked[k].astype("string").fillna("") for k in within], sort=False, dropna=False):
        metric = key[within.index("metric")]
        ivs = [Interval(int(r.n), _f(r.mean), _f(r.std), _f(r.ci_low), _f(r.ci_high)) for r in grp.itertuples()]
        ranks = rank_with_ties(ivs, metric_sense(str(metric)))
        summary.loc[grp.index, "rank"] = pd.array(ranks, dtype="Int64")
        counts = pd.Series([r for r in ranks if r is not None]).value_counts()
        summary.loc[grp.index, "tied"] = [r is not None and counts.get(r, 0) > 1 for r in ranks]
    return summary


def _f(value: object) -> float:
    v = pd.to_numeric(value, errors="coerce")
    return math.nan if pd.isna(v) else float(v)


# --- text -------------------------------------------------------------------------------------


def format_mean_ci(mean: float, half: float, n: int) -> str:
    """``41.23 ± 0.48``: the mean to the precision of its interval (two significant digits of the
    half width); ``41.23 (1 seed)`` without one; ``n/a`` without a value."""
    if n == 0 or pd.isna(mean):
        return "n/a"
    if n == 1 or pd.isna(half):
        return f"{mean:.4g} (1 seed)"
    if half == 0:
        return f"{mean:.4g} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(abs(half))))
    return f"{mean:.{decimals}f} ± {half:.{decimals}f}"


def format_rank(rank: object, tied: bool) -> str:
    """``1``, ``1 (tied)`` when another configuration shares it, ``-`` when not ranked."""
    if rank is None or pd.isna(rank):
        return "-"
    place = int(rank)  # type: ignore[call-overload]  # a number: a summary's rank, an int or a float
    return f"{place} (tied)" if tied else str(place)


def options_label(module: str, options: object) -> str:
    """A configuration's options as ``k=v``, leaving out those at the module's registered default
    (a default the registry works out from the width is not a fixed value: always shown); the
    options column holds the full set. A module the registry does not know shows every option."""
    from hambench.registry import DefaultRule, RegistryError, get_spec

    values = json_object(options)
    if values is None:
        return _as_written(options)
    try:
        defaults = get_spec(module).defaults
    except RegistryError:
        defaults = {}

    def at_default(key: str, value: object) -> bool:
        default = defaults.get(key, DefaultRule)  # an unknown key is never at its default
        if isinstance(default, DefaultRule) or default is DefaultRule:
            return False
        return json.loads(json.dumps(default, default=str)) == value  # (1, 2) reads back as [1, 2]

    shown = {k: v for k, v in sorted(values.items()) if not at_default(k, v)}
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in shown.items()) or "defaults"


# A tuned suite's arms (hambench.tuning.search), in the order shown, each ranked on its own ("":
# a plain grid), and what a table's title says of each.
ARMS = ("tuned", "default", "")
ARM_TITLES = {"tuned": ", chosen on validation, scored on test", "default": ", defaults, scored on test", "": ""}


def data_title(data: object, data_options: object) -> str:
    """A data set and its options as a comparison's name: ``synthetic-recall keys=2``."""
    return data_label(str(data), json_object(data_options) or {})


def tuned_label(tuned: object) -> str:
    """The values a search set (the ``tuned`` JSON), as ``lr=0.0734 weight_decay=0.000213``
    (three significant digits); ``-`` when there are none."""
    values = json_object(tuned)
    if not values:
        return _as_written(tuned)
    text = lambda v: f"{v:.3g}" if isinstance(v, float) else json.dumps(v) if not isinstance(v, str) else v  # noqa: E731
    return " ".join(f"{k}={text(v)}" for k, v in sorted(values.items()))


def _as_written(value: object) -> str:
    """A value that is no JSON object, as a label: text that is not JSON as written (a hand-made
    table's), anything else (empty, missing, JSON of another kind) ``-``."""
    if isinstance(value, str) and value:
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return "-"
