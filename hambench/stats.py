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
    return gap > 0 and welch_p(a, b) < alpha


def welch_p(a: Interval, b: Interval) -> float:
    """Welch's two-sided p-value for the means of ``a`` and ``b`` (two seeds or more each). Every
    seed giving one value on both sides makes the gap exact: p = 0 when the means differ, 1 when not."""
    if a.std == 0 and b.std == 0:
        return 0.0 if a.mean != b.mean else 1.0
    return float(sps.ttest_ind_from_stats(a.mean, a.std, a.n, b.mean, b.std, b.n, equal_var=False).pvalue)


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
    part, ok, metrics = _reported(results)
    tasks = list(metrics)
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


def _reported(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[str]]]:
    """The rows a summary compares (the training trials, or the profiling ones of a profile-only
    run), those of them that finished, and each task's reported metrics."""
    # The report's readers too (hambench.results): one schema, and one choice of MAC counter.
    # A search's val scores select, never report; a tuned suite's arms are compared each on its own.
    results = with_macs(normalise_results(by_arm(reported_rows(results))))
    train = results[results["task"] != PROFILE]
    part = train if not train.empty else results
    ok = part[part["status"] == "ok"]
    tasks = [str(t) for t in part["task"].dropna().unique()]
    return part, ok, {t: reported_metrics(t, ok[ok["task"] == t]) for t in tasks}


# --- pairs: the probability of improvement ------------------------------------------------------


def probability_of_improvement(a: Sequence[float], b: Sequence[float], direction: Sense) -> float:
    """P(a seed of A scores better than a seed of B): the Mann-Whitney U of A against B over
    n_A n_B, a tie counting half (Agarwal et al., NeurIPS 2021). 0.5: no tendency either way."""
    if len(a) == 0 or len(b) == 0:
        return math.nan
    p = float(_improvement_share(np.asarray(a, float), np.asarray(b, float)))
    return p if direction == "max" else 1.0 - p


def _improvement_share(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """The share of pairs (one of ``a``, one of ``b``) in which a's is higher, a tie counting half:
    scipy's Mann-Whitney U of a against b over n_a n_b, along ``axis`` (every resample at once)."""
    u = sps.mannwhitneyu(a, b, axis=axis, method="asymptotic").statistic  # only U: no p-value needed
    return np.asarray(u) / (a.shape[axis] * b.shape[axis])


def improvement_interval(
    a: Sequence[float], b: Sequence[float], direction: Sense, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """A bootstrap interval of ``probability_of_improvement``: each configuration's seeds resampled
    on their own (``scipy.stats.bootstrap``, percentile, 2000 resamples, a fixed generator so a
    table is reproducible). Below two seeds on either side: (nan, nan)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    sign = 1.0 if direction == "max" else -1.0  # "min": a better when lower
    x, y = sign * np.asarray(a, float), sign * np.asarray(b, float)
    if np.ptp(np.concatenate([x, y])) == 0:  # every seed equal: no spread to resample
        return 0.5, 0.5
    res = sps.bootstrap(
        (x, y),
        _improvement_share,
        confidence_level=confidence,
        n_resamples=2000,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


PAIR_COLUMNS = [
    "task",
    "data",
    "data_options",
    "arm",
    "metric",
    "sense",
    "headline",
    "a",
    "b",
    "n_a",
    "n_b",
    "p_improvement",
    "ci_low",
    "ci_high",
    "module_a",
    "options_a",
    "module_b",
    "options_b",
]


def configuration_label(row: pd.Series | dict, varying: Sequence[str] = ()) -> str:
    """A configuration's short name in a comparison: ``ham-nmf rank=8`` (its options that are not
    the module's defaults), with the keys that vary in that comparison (``backbone=r50-d8``)."""
    label = options_label(str(row["module"]), row.get("options"))
    parts = [str(row["module"]), *([] if label == "defaults" else [label])]
    return " ".join(parts + [f"{k}={row.get(k)}" for k in varying])


def improvements(results: pd.DataFrame) -> pd.DataFrame:
    """``pairs.csv``, the summary's companion: for every ordered pair (A, B) of configurations
    within a comparison (same task, data set and options, metric and arm), P(A better than B) over
    their seeds with a bootstrap 95 % interval (``probability_of_improvement``,
    ``improvement_interval``). Columns: PAIR_COLUMNS; ``a`` and ``b`` are ``configuration_label``s."""
    _, ok, metrics = _reported(results)
    rows: list[dict] = []
    if ok.empty or not any(metrics.values()):
        return pd.DataFrame(columns=PAIR_COLUMNS)
    table = per_configuration(ok, list(dict.fromkeys(m for ms in metrics.values() for m in ms)))
    within = [k for k in ("task", "data", "data_options", "arm") if k in table.columns]
    for key, grp in table.groupby(within, sort=False, dropna=False):
        comparison = dict(zip(within, key if isinstance(key, tuple) else (key,)))
        varying = [k for k in ("backbone", "head", "tuned") if k in grp and grp[k].nunique() > 1]
        labels = [configuration_label(r, varying) for _, r in grp.iterrows()]
        for i, m in enumerate(metrics.get(str(comparison["task"]), [])):
            sense = metric_sense(m)
            records = grp.to_dict("records")
            values = [[v for _, v in r[f"{m}_values"]] for r in records]
            for ia, ra in enumerate(records):
                for ib, rb in enumerate(records):
                    if ia == ib or not values[ia] or not values[ib]:
                        continue
                    low, high = improvement_interval(values[ia], values[ib], sense)
                    p = probability_of_improvement(values[ia], values[ib], sense)
                    rows.append(
                        comparison
                        | dict(metric=m, sense=sense, headline=i == 0, a=labels[ia], b=labels[ib])
                        | dict(n_a=len(values[ia]), n_b=len(values[ib]), p_improvement=p, ci_low=low, ci_high=high)
                        | dict(module_a=ra["module"], options_a=ra.get("options"))
                        | dict(module_b=rb["module"], options_b=rb.get("options"))
                    )
    return pd.DataFrame(rows).reindex(columns=PAIR_COLUMNS)


# --- across comparisons: aggregates --------------------------------------------------------------

# A configuration across comparisons: the summary's keys less the comparison's own.
AGGREGATE_KEYS = ("task", "arm", "module", "family", "backbone", "head", "options", "iters")
BASELINE = "none"  # the floor of the normalisation: the head with no context module
AGGREGATE_COLUMNS = [*AGGREGATE_KEYS, "metric", "comparisons", "runs", "iqm", "ci_low", "ci_high", "mean"]


def normalised_scores(results: pd.DataFrame) -> pd.DataFrame:
    """Every finished trial's headline score, normalised within its comparison (task, data set and
    options, arm) between ``none``'s mean (0) and the best configuration's mean (1); comparisons
    without ``none`` use their worst configuration's mean as 0. One row per trial: the
    AGGREGATE_KEYS, ``comparison`` (its data title), ``metric``, ``seed``, ``score``."""
    _, ok, metrics = _reported(results)
    rows: list[dict] = []
    if ok.empty:
        return pd.DataFrame(columns=[*AGGREGATE_KEYS, "comparison", "metric", "seed", "score"])
    within = [k for k in ("task", "data", "data_options", "arm") if k in ok.columns]
    table = ok.assign(**{k: ok[k].astype("string").fillna("") for k in [*within, *config_keys(ok)]})
    for key, grp in table.groupby(within, sort=False):
        comparison = dict(zip(within, key if isinstance(key, tuple) else (key,)))
        task_metrics_ = metrics.get(str(comparison["task"]), [])
        if not task_metrics_:
            continue
        metric, sense = task_metrics_[0], metric_sense(task_metrics_[0])
        values = pd.to_numeric(grp[metric], errors="coerce")
        means = values.groupby([grp[k] for k in config_keys(grp)], sort=False).mean().dropna()
        if len(means) < 2:
            continue
        best = means.max() if sense == "max" else means.min()
        floor_rows = values[grp["module"] == BASELINE]
        floor = floor_rows.mean() if floor_rows.notna().any() else (means.min() if sense == "max" else means.max())
        if best == floor:
            continue
        title = data_title(comparison["data"], comparison.get("data_options", ""))
        for (_, r), v in zip(grp.iterrows(), values):
            if pd.notna(v):
                rows.append(
                    {k: r.get(k, "") for k in AGGREGATE_KEYS}
                    | dict(comparison=title, metric=metric, seed=r.get("seed"), score=(v - floor) / (best - floor))
                )
    return pd.DataFrame(rows, columns=[*AGGREGATE_KEYS, "comparison", "metric", "seed", "score"])


def interquartile_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The mean of the middle 50 % (``scipy.stats.trim_mean`` at 25 %): robust to an outlier seed,
    less noisy than the median (Agarwal et al., NeurIPS 2021)."""
    return np.asarray(sps.trim_mean(values, 0.25, axis=axis))


def aggregates(results: pd.DataFrame, confidence: float = CONFIDENCE, seed: int = 0) -> pd.DataFrame:
    """Per configuration over the comparisons it took part in (for runs with two or more: the probe
    levels, several data sets): the interquartile mean of its normalised scores (``normalised_scores``)
    with a stratified bootstrap interval: 2000 resamples, each comparison's trials of the
    configuration resampled within that comparison, the IQM recomputed, the percentile interval.
    Columns: AGGREGATE_COLUMNS; empty below two comparisons."""
    scores = _across_comparisons(normalised_scores(results))
    if scores.empty:
        return pd.DataFrame(columns=AGGREGATE_COLUMNS)
    rng = np.random.default_rng(seed)
    rows = []
    for key, grp in scores.groupby([*AGGREGATE_KEYS, "metric"], sort=False):
        strata = [g["score"].to_numpy(float) for _, g in grp.groupby("comparison", sort=False)]
        pooled = np.concatenate(strata)
        resampled = np.concatenate([s[rng.integers(0, len(s), size=(2000, len(s)))] for s in strata], axis=1)
        low, high = np.quantile(interquartile_mean(resampled, axis=1), [(1 - confidence) / 2, (1 + confidence) / 2])
        rows.append(
            dict(zip([*AGGREGATE_KEYS, "metric"], key))
            | dict(comparisons=len(strata), runs=len(pooled), iqm=float(interquartile_mean(pooled)))
            | dict(ci_low=float(low), ci_high=float(high), mean=float(pooled.mean()))
        )
    return pd.DataFrame(rows, columns=AGGREGATE_COLUMNS).sort_values("iqm", ascending=False, ignore_index=True)


def _across_comparisons(scores: pd.DataFrame) -> pd.DataFrame:
    """The normalised scores of the tasks (and arms) that compared modules in two or more comparisons."""
    if scores.empty:
        return scores
    count = scores.groupby(["task", "arm"])["comparison"].transform("nunique")
    return scores[count >= 2]


def performance_profile(results: pd.DataFrame, taus: Sequence[float] | None = None) -> pd.DataFrame:
    """The share of a configuration's normalised scores above each threshold tau (Dolan & Moré's
    performance profile as Agarwal et al. use it): one curve per configuration, a curve above
    another everywhere is better at every level of the tasks. Columns: the AGGREGATE_KEYS, ``tau``,
    ``fraction``; empty below two comparisons."""
    scores = _across_comparisons(normalised_scores(results))
    if scores.empty:
        return pd.DataFrame(columns=[*AGGREGATE_KEYS, "tau", "fraction"])
    grid = np.asarray(taus if taus is not None else np.linspace(-0.25, 1.25, 61), float)
    rows = []
    for key, grp in scores.groupby(list(AGGREGATE_KEYS), sort=False):
        values = grp["score"].to_numpy(float)
        for tau, fraction in zip(grid, (values[None, :] > grid[:, None]).mean(axis=1)):
            rows.append(dict(zip(AGGREGATE_KEYS, key)) | dict(tau=float(tau), fraction=float(fraction)))
    return pd.DataFrame(rows)


# --- two runs: what changed ----------------------------------------------------------------------

# What makes two runs' configurations the same one (the summary's keys less what follows from
# them or only says where a cost was measured).
COMPARE_KEYS = ("task", "data", "data_options", "arm", "module", "backbone", "head", "options", "iters")
COMPARE_COLUMNS = [
    *COMPARE_KEYS,
    "metric",
    "sense",
    "headline",
    "n_a",
    "mean_a",
    "ci_half_a",
    "n_b",
    "mean_b",
    "ci_half_b",
    "change",
    "p_value",
    "p_b_better",
    "p_b_better_low",
    "p_b_better_high",
    "verdict",
]


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Two results tables (run A, the reference; run B, the new one) configuration by configuration
    and metric: each run's n, mean and 95 % half width, ``change`` = mean B - mean A, Welch's
    two-sided ``p_value``, P(a seed of B beats a seed of A) with its bootstrap interval, and the
    ``verdict``: ``better`` or ``worse`` when Welch's test says so at ``alpha`` (in the metric's
    direction), ``same`` when it does not, ``not tested`` below two seeds on a side, ``only in A`` /
    ``only in B`` for a configuration one run lacks. Columns: COMPARE_COLUMNS."""
    sides = []
    for results in (a, b):
        _, ok, metrics = _reported(results)
        names = list(dict.fromkeys(m for ms in metrics.values() for m in ms))
        table = per_configuration(ok, names) if not ok.empty else pd.DataFrame()
        sides.append((table, metrics))
    (table_a, metrics_a), (table_b, metrics_b) = sides
    keys = [k for k in COMPARE_KEYS if k in table_a.columns and k in table_b.columns]
    index_a = {tuple(r[k] for k in keys): r for r in table_a.to_dict("records")}
    index_b = {tuple(r[k] for k in keys): r for r in table_b.to_dict("records")}
    rows = []
    for key in [*index_a, *(k for k in index_b if k not in index_a)]:
        ra, rb = index_a.get(key), index_b.get(key)
        task = str((ra or rb)["task"])  # type: ignore[index]
        for i, m in enumerate(dict.fromkeys([*metrics_a.get(task, []), *metrics_b.get(task, [])])):
            rows.append(dict(zip(keys, key)) | _compared(ra, rb, m, alpha) | dict(metric=m, headline=i == 0))
    return pd.DataFrame(rows).reindex(columns=COMPARE_COLUMNS)


def _compared(ra: dict | None, rb: dict | None, metric: str, alpha: float) -> dict:
    """One configuration's ``metric`` in runs A and B (either may lack it): the COMPARE_COLUMNS values."""
    sense = metric_sense(metric)
    va = [v for _, v in ra.get(f"{metric}_values", [])] if ra else []
    vb = [v for _, v in rb.get(f"{metric}_values", [])] if rb else []
    ia, ib = interval(va), interval(vb)
    out: dict = dict(sense=sense, n_a=len(va), n_b=len(vb), mean_a=ia.mean, ci_half_a=ia.half_width)
    out |= dict(mean_b=ib.mean, ci_half_b=ib.half_width)
    if not va or not vb:
        return out | dict(verdict="only in A" if va else "only in B")
    out["change"] = ib.mean - ia.mean
    if len(va) < 2 or len(vb) < 2:
        return out | dict(verdict="not tested")
    low, high = improvement_interval(vb, va, sense)
    if significantly_better(ib, ia, sense, alpha):
        verdict = "better"
    elif significantly_better(ia, ib, sense, alpha):
        verdict = "worse"
    else:
        verdict = "same"
    return out | dict(
        p_value=welch_p(ia, ib),
        p_b_better=probability_of_improvement(vb, va, sense),
        p_b_better_low=low,
        p_b_better_high=high,
        verdict=verdict,
    )


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
