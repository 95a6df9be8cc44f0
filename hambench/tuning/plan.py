"""What a run starts with: the runner's choice between a suite's plain grid and the tuning
protocol's search (the retrain follows from the search's results, ``hambench.tuning.search``)."""

from __future__ import annotations

from hambench.suite import Suite, grid_points, grid_trials, profile_trials, smoke
from hambench.trial import Trial
from hambench.tuning.search import search_trials


def expand(
    suite: Suite, *, smoke_run: bool = False, only: list[str] | None = None, source: str | None = None
) -> list[Trial]:
    """The trials the suite starts with: the profiling trials first (one per distinct module and
    options), then one training trial per grid point and seed; for a suite with ``tune:``, the
    search's samples instead. ``smoke_run``: the suite's smoke budgets (``hambench.suite.smoke``);
    ``only``: these modules of the suite; ``source``: the file named in errors."""
    if smoke_run:
        suite = smoke(suite)
    points = grid_points(suite, only=only, source=source)
    training = search_trials(suite, points) if suite.tune is not None else grid_trials(suite, points)
    trials = {t.trial_id: t for t in profile_trials(suite, points)}
    trials.update((t.trial_id, t) for t in training)
    return list(trials.values())
