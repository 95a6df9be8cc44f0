"""Fixtures shared by the test files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
import torch


@pytest.fixture
def one_thread():
    """torch on one thread for the test (counts and memory do not depend on it; the test's speed
    on a shared machine does), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``fresh_python(code, env=None)`` runs ``code`` in a new interpreter, where nothing is imported
    yet (``env``: its environment), and returns what it printed; a non-zero exit fails the test."""

    def run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)

    return run


@pytest.fixture
def scoped_registry():
    """The test's own registry: modules it registers (toys, plugins it loads) are gone after it."""
    from hambench.registry import scoped_registry

    with scoped_registry():
        yield


# --------------------------------------------------------------------------------------------- Tune results

# The Ray that tune_results started, while it is up: its temporary folder (it shuts down only its own).
_toy_ray: dict[str, str] = {}


def _replay_trainable() -> Callable[[dict[str, Any]], None]:
    """A toy trainable: it reports, in order, the metrics its config lists for its trial. Made in a
    function, so that Ray ships it by value (no worker can import this conftest)."""

    def replay(config: dict[str, Any]) -> None:
        from ray import tune

        for metrics in config["reports"][config["trial"]["trial_id"]]:
            tune.report(metrics)

    return replay


@pytest.fixture(scope="session")
def tune_results(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., list[Any]]:
    """``run(trials, reports)``: Ray Tune's own results (``ray.tune.Result``) of toy trials, for the
    code that reads Tune's results (``collect_tables``) without faking their shape.

    One Tune trial per dict of ``trials``, which its config carries under ``"trial"`` as the suite
    driver's does; it reports ``reports[trial["trial_id"]]``, a list of metric dicts, in order. The
    results come back in the order of ``trials``. Ray starts at the first call and stays up for the
    next tests that use this fixture; it is shut down before any other test (the runner's own tests
    start their own Ray, and some check that none is left running): see pytest_runtest_teardown.
    """

    def run(trials: list[dict[str, Any]], reports: dict[str, list[dict[str, Any]]]) -> list[Any]:
        import ray
        from ray import tune

        if not ray.is_initialized():
            # One CPU: the trials run one after another in one reused worker, the quickest on a small
            # machine (a worker process costs seconds to start, a toy trial milliseconds).
            _toy_ray["temp"] = tempfile.mkdtemp(prefix="hb-tune-", dir="/tmp")  # short: socket paths < 108 chars
            ray.init(
                num_cpus=1,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                _temp_dir=_toy_ray["temp"],
            )
        tuner = tune.Tuner(
            _replay_trainable(),
            param_space={"trial": tune.grid_search(trials), "reports": reports},
            tune_config=tune.TuneConfig(reuse_actors=True),  # one worker process, not one per trial
            run_config=tune.RunConfig(storage_path=str(tmp_path_factory.mktemp("tune")), verbose=0),
        )
        grid = tuner.fit()
        assert not grid.errors, grid.errors
        by_id = {result.config["trial"]["trial_id"]: result for result in grid}
        return [by_id[trial["trial_id"]] for trial in trials]

    return run


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Shut down the Ray tune_results started once the next test does not use it."""
    if _toy_ray and (nextitem is None or "tune_results" not in getattr(nextitem, "fixturenames", ())):
        import ray

        ray.shutdown()
        shutil.rmtree(_toy_ray.pop("temp"), ignore_errors=True)
