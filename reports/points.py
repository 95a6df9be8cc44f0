"""Seeds to points: one point per configuration, the numbers every figure of the report draws."""

from __future__ import annotations

import pandas as pd

from hambench.results import normalise_results, reported_rows, with_macs
from hambench.schema import MODEL_COSTS, MODULE_COSTS
from hambench.stats import CONFIG_KEYS, group_configurations, per_configuration
from hambench.tasks import accuracy_columns

__all__ = ["aggregate_seeds"]


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
    extra_costs = [
        "macs_fvcore",
        "macs_torchprofile",
        "flops_torch",
        "latency_iqr_ms",
        "seconds",
        *MODULE_COSTS,
        "model_macs_fvcore",
        "model_latency_iqr_ms",
        "model_cost_seconds",
    ]
    costs = list(dict.fromkeys([*MODEL_COSTS, *extra_costs]))
    points = per_configuration(ok, accuracy_columns(), costs)
    keys = [k for k in CONFIG_KEYS if k in ok.columns]  # `head` is written by the tasks that have one
    extra = (
        group_configurations(ok, keys)
        .agg(
            trials=("trial_id", lambda s: ", ".join(map(str, s))),
            device_name=("device_name", "first"),
            node=("node", "first"),
            model_shape=("model_shape", "first"),  # the training crop: one per configuration
            runs=("run_id", lambda s: ", ".join(dict.fromkeys(map(str, s)))),
        )
        .reset_index()
    )
    return points.merge(extra, on=keys, how="left", validate="one_to_one")
