"""Every figure of the report, assembled: the accuracy fronts (``pareto_figures``), the context
module's own cost (``module_figures``) and cost against resolution (``scaling_figures``), keyed as
the report and ``--figures`` name them."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from hambench.reports.module_figures import module_figures
from hambench.reports.pareto_figures import accuracy_figures
from hambench.reports.points import aggregate_seeds
from hambench.reports.runs import default_axes
from hambench.reports.scaling_figures import scaling_figures
from hambench.results import normalise_results
from hambench.schema import DEFAULT_MODULE_AXES, MODEL_COSTS, MODULE_COSTS
from hambench.tasks import accuracy_columns

__all__ = ["build_figures", "split_axes"]


def split_axes(axes: list[tuple[str, str]] | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(x, y) pairs -> (accuracy fronts, module-cost views). None: the defaults (``runs.default_axes``:
    every front metric against every whole-model cost, and DEFAULT_MODULE_AXES). The module's own
    cost always gets its view: with no cost-vs-cost pair named, the default one."""
    axes = default_axes() if axes is None else axes
    accuracy = [(x, y) for x, y in axes if y in accuracy_columns() and x in MODEL_COSTS]
    module = [(x, y) for x, y in axes if y in MODULE_COSTS and x in MODULE_COSTS]
    return accuracy, module or list(DEFAULT_MODULE_AXES)


def build_figures(
    results: pd.DataFrame,
    profile: pd.DataFrame | None = None,
    references: pd.DataFrame | None = None,
    axes: list[tuple[str, str]] | None = None,
    references_name: str = "references.csv",
) -> dict[str, go.Figure]:
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
