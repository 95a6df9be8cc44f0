"""Live progress on the driver: one line per change, on stderr."""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from typing import Any

from ray import tune

from hambench.tasks import metric_sense
from hambench.trial import Trial
from hambench.tuning.trainable import done_ids


class Progress(tune.Callback):
    """Trials done / running / pending / failed, the best value per metric, elapsed and estimated
    remaining time."""

    def __init__(
        self, trials: list[Trial], metrics: list[str], done_uri: str, enabled: bool = True, label: str = ""
    ) -> None:
        # label: which experiment of the run the line counts (a tuned suite's "search (val)" or "retrain (test)")
        self.metrics, self.done_uri, self.enabled, self.label = metrics, done_uri, enabled, label
        self.task_of = {t.trial_id: t.task for t in trials}
        self.finished: set[str] = set()  # our trial ids
        self.failed = 0
        self.running: dict[str, tuple[str, float]] = {}  # Tune trial id -> (task, start time)
        self.durations: dict[str, list[float]] = defaultdict(list)  # task -> seconds of its finished trials
        self.slots = 1  # most trials seen running at once
        self.best: dict[str, tuple[float, str]] = {}
        self.start = time.time()
        self.last_line = ""

    def setup(self, **info: Any) -> None:
        """At the start of a run or of a resumed one (Tune restores this callback from its pickle)."""
        self.start = time.time()
        self.finished = done_ids(self.done_uri) & set(self.task_of)
        self.running.clear()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running[trial.trial_id] = (trial.config["trial"]["task"], time.time())
        self.slots = max(self.slots, len(self.running))
        self.show()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.observe(result, trial.config["trial"]["module"], trial.config["trial"]["family"])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finish(trial, failed=(trial.last_result or {}).get("status") == "failed")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.say(trial, f"its worker failed; retry {trial.run_metadata.num_failures} of {trial.max_failures}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.say(trial, f"its worker failed {trial.run_metadata.num_failures} time(s); counted failed")
        self.finish(trial, failed=True)

    def say(self, trial: Any, what: str) -> None:
        """One line about a trial's worker (Tune's traceback is in the run's ray.log, or above with --verbose)."""
        if self.enabled:
            print(f"{trial.config['trial']['trial_id']}: {what}", file=sys.stderr, flush=True)

    def observe(self, result: dict[str, Any], module: str, family: str) -> None:
        if result.get("sweep_size") is not None:
            return  # an n-sweep step: its costs are at another size than the suite's shape
        for m in self.metrics:
            value = result.get(m)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            higher = metric_sense(m) == "max"
            if family == "none" and not higher:
                continue  # the no-context baseline is always cheapest: not news
            best = self.best.get(m, (None,))[0]
            if best is None or (value > best if higher else value < best):
                self.best[m] = (float(value), module)

    def finish(self, trial: Any, failed: bool) -> None:
        running = self.running.pop(trial.trial_id, None)
        if running is not None:
            task, started = running
            self.durations[task].append(time.time() - started)
        self.finished.add(trial.config["trial"]["trial_id"])
        self.failed += failed
        self.show()

    def eta(self) -> float | None:
        """Remaining trials x the mean duration of their task, spread over the parallel slots."""
        now, work = time.time(), 0.0
        for task in set(self.task_of.values()):
            left = sum(t == task and i not in self.finished for i, t in self.task_of.items())
            if not left:
                continue
            seen = self.durations[task] or [now - s for t, s in self.running.values() if t == task]
            if not seen:
                return None
            work += left * sum(seen) / len(seen)
        return work / self.slots

    def line(self) -> str:
        elapsed, total, done = time.time() - self.start, len(self.task_of), len(self.finished)
        pending = max(0, total - done - len(self.running))
        eta = self.eta()
        best = ", ".join(f"{m} {v:.4g} ({mod})" for m, (v, mod) in self.best.items())
        return (
            f"[{elapsed:6.0f}s] {self.label + ': ' if self.label else ''}done {done}/{total} (failed {self.failed})"
            f" | running {len(self.running)}"
            f" | pending {pending} | eta {'?' if eta is None else f'{eta:.0f}s'}" + (f" | best: {best}" if best else "")
        )

    def show(self) -> None:
        line = self.line()
        if self.enabled and line != self.last_line:
            print(line, file=sys.stderr, flush=True)
            self.last_line = line
