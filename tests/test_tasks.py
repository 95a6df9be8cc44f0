"""The task interface: a task is one declaration, and the framework follows it.

A toy task registered for one test (``scoped_tasks``) is accepted by the suite schema, expanded
into trials, run by the trainable's training path and written to the results table with its own
metrics, without any framework file naming it; the built-in tasks' budget mappings are checked
on the configs they build.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hambench.suite import SuiteError, parse_suite
from hambench.tasks import Metric, Task, TaskError, build_config, get_task, register_task, scoped_tasks, task_names
from hambench.tuning.plan import expand
from hambench.tuning.trainable import TuneContext


@dataclass
class ToyConfig:
    context: str = "none"
    steps: int = 1
    seed: int = 0
    scale: float = 1.0


def toy_config(trial: Any, ctx: Any) -> ToyConfig:
    return build_config(
        ToyConfig, dict(context=trial.module, steps=trial.budget.iters, seed=trial.seed) | trial.task_options
    )


def toy_train(cfg: ToyConfig, callback: Any = None) -> dict[str, Any]:
    return {
        "score": cfg.scale * (cfg.steps + cfg.seed),
        "loss": 1.0 / cfg.steps,
        "iters": cfg.steps,
        "not_a_column": [1, 2],
    }


def toy_model(cfg: ToyConfig, device: Any) -> tuple[Any, Any, None, str]:
    import torch

    return torch.nn.Conv2d(3, 4, 1).to(device), torch.zeros(1, 3, 8, 8, device=device), None, "1x3x8x8"


TOY = Task(
    name="toy",
    order=5,
    metrics=(Metric("score", "max", front=True), Metric("loss", "min")),
    config=ToyConfig,
    config_for=toy_config,
    train=toy_train,
    model=toy_model,
)

SUITE = """
    name: toy-suite
    description: a toy task's suite
    task: toy
    grid:
      modules: [none, ham-nmf]
      backbones: [none]
      data: [none]
      seeds: [0, 1]
    budget: {iters: 3, eval_interval: 1}
    profile: {shape: [1, 16, 8, 8]}
    pareto: [{x: model_macs, y: score}]
"""


class LocalContext(TuneContext):
    """A trial's context outside Tune: a work folder, no checkpoint, reports dropped."""

    def __init__(self, work: Path, **kwargs: Any) -> None:
        super().__init__(plugins=[], done_uri=str(work / "done"), data_roots={}, where={"device": "cpu"}, **kwargs)
        self._work = work

    def work_dir(self) -> Path:
        return self._work

    def restore(self, into: Path | None = None) -> None:
        return None

    def report(self, metrics: dict[str, Any], state: dict[str, Any]) -> None:
        pass


def load(text: str) -> Any:
    return parse_suite(yaml.safe_load(textwrap.dedent(text)), "toy.yaml")


def test_a_registered_task_runs_through_schema_expansion_trainable_and_tables(tmp_path: Path, tune_results) -> None:
    from hambench.results import read_columns
    from hambench.stats import summarize
    from hambench.tasks import metric_sense as sense
    from hambench.tuning import collect_tables
    from hambench.tuning.trainable import _train

    with scoped_tasks():
        register_task(TOY)
        assert "toy" in task_names() and sense("score") == "max" and sense("loss") == "min"
        suite = load(SUITE)
        trials = expand(suite)
        toy = [t for t in trials if t.task == "toy"]
        assert len([t for t in trials if t.task == "profile"]) == 2
        assert sorted(t.trial_id for t in toy) == [
            "toy-ham-nmf-none-s0",
            "toy-ham-nmf-none-s1",
            "toy-none-none-s0",
            "toy-none-none-s1",
        ]

        result = _train(TOY, toy[0], LocalContext(tmp_path))  # the trainable's path for a training task
        assert result["score"] == 3.0 and "not_a_column" not in result
        assert result["model_macs"] == 3 * 4 * 8 * 8 and result["model_cost_error"] == ""

        reports = {
            t.trial_id: [
                {
                    "status": "ok",
                    "iters": 3,
                    **(
                        {"params": 10, "latency_ms": 0.1}
                        if t.task == "profile"
                        else {**toy_train(toy_config(t, None)), "model_macs": 99}
                    ),
                }
            ]
            for t in trials
        }
        grid = tune_results([t.model_dump(mode="json") for t in trials], reports)  # Tune's own results
        table, _, _ = collect_tables(suite, "r", grid)
        assert list(table["task"]) == ["profile"] * 2 + ["toy"] * 4  # in the tasks' order
        rows = table[table["task"] == "toy"].set_index("trial_id")
        assert rows.loc["toy-none-none-s1", "score"] == 4.0 and rows.loc["toy-none-none-s1", "loss"] == pytest.approx(
            1 / 3
        )
        assert (rows["model_macs"] == 99).all() and (rows["params"] == 10).all()  # model cost; the module's, joined
        assert "score" in read_columns() and "loss" in read_columns()

        summary = summarize(table)
        best = summary[(summary["metric"] == "score") & (summary["module"] == "none")].iloc[0]
        assert best["sense"] == "max" and best["headline"] and best["n"] == 2 and best["mean"] == 3.5
    assert "toy" not in task_names()  # the block removed it
    with pytest.raises(SuiteError, match="task: Input should be 'profile', 'seg' or 'gan' \\(got 'toy'\\)"):
        load(SUITE)


def test_a_budget_field_the_task_does_not_apply_fails_to_load() -> None:
    with scoped_tasks():
        register_task(TOY)
        with pytest.raises(
            SuiteError,
            match=r"toy.yaml: invalid suite: budget: crop: not used by task toy; "
            r"its budget fields: iters, eval_interval",
        ):
            load(SUITE.replace("eval_interval: 1}", "eval_interval: 1, crop: [8, 8]}"))


def test_a_declaration_needs_its_code_and_a_free_name() -> None:
    with pytest.raises(TaskError, match="give `run`, or all of config, config_for, train and model"):
        Task(name="half", order=9, config=ToyConfig, train=toy_train)
    with scoped_tasks():
        with pytest.raises(TaskError, match="task 'seg' is already registered"):
            register_task(Task(name="seg", order=9, run=lambda trial, ctx: {}))
    assert get_task("seg").train is not toy_train


@pytest.mark.parametrize(
    "task, budget, field",
    [
        ("gan", "{iters: 4, eval_interval: 2, crop: [64, 64]}", "crop"),
        ("seg", "{iters: 4, eval_interval: 2, res: 64}", "res"),
        ("profile", "{iters: 4, eval_interval: 2}", "iters, eval_interval"),
    ],
)
def test_shipped_tasks_reject_budget_fields_they_cannot_apply(task: str, budget: str, field: str) -> None:
    data = "synthetic-shapes" if task == "gan" else "synthetic-context"
    with pytest.raises(SuiteError, match=f"budget: {field}: not used by task {task}"):
        load(f"""
            name: b
            description: budget fields
            task: {task}
            grid: {{modules: [none], data: [{data}]}}
            budget: {budget}
            profile: {{shape: [1, 8, 8, 8]}}
        """)


def seg_trial(crop: str) -> Any:
    suite = load(f"""
        name: s
        description: seg budget
        task: seg
        grid: {{modules: [none], backbones: [tiny-d8], data: [synthetic-context, ade20k]}}
        budget: {{iters: 4, eval_interval: 2{crop}}}
    """)
    return {t.data: t for t in expand(suite)}


def test_seg_budget_crop_defaults_to_the_data_sets(tmp_path: Path) -> None:
    seg = get_task("seg")
    ctx = LocalContext(tmp_path)
    unset = {name: seg.config_for(t, ctx) for name, t in seg_trial("").items()}
    assert unset["synthetic-context"].resolved_crop() == (96, 96) and unset["ade20k"].resolved_crop() == (512, 512)
    assert unset["ade20k"].resolved_lr() == 0.01  # no budget lr: the data set's
    given = seg.config_for(seg_trial(", crop: [32, 48], lr: 0.5")["ade20k"], ctx)
    assert given.resolved_crop() == (32, 48) and given.lr == 0.5 and given.iters == 4 and given.threads == 1


def test_gan_budget_lr_sets_both_learning_rates_at_the_ttur_ratio(tmp_path: Path) -> None:
    gan = get_task("gan")
    ctx = LocalContext(tmp_path)

    def config(budget: str, task_options: str = "{}") -> Any:
        suite = load(f"""
            name: g
            description: gan budget
            task: gan
            grid: {{modules: [none], data: [synthetic-shapes], task_options: {task_options}}}
            budget: {budget}
        """)
        (trial,) = expand(suite)
        return gan.config_for(trial, ctx)

    default = config("{iters: 4, eval_interval: 2}")
    assert (default.lr_g, default.lr_d, default.res, default.batch) == (1e-4, 4e-4, 32, 8)  # batch: the task's default
    fast = config("{iters: 4, eval_interval: 2, lr: 2e-4, res: 64}")
    assert fast.lr_g == 2e-4 and fast.lr_d == pytest.approx(8e-4) and fast.res == 64
    mine = config("{iters: 4, eval_interval: 2, lr: 2e-4}", "{lr_d: 1.0e-3}")
    assert mine.lr_g == 2e-4 and mine.lr_d == 1e-3  # task_options win


def test_a_sweep_size_equal_to_the_profile_shape_is_measured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quickstart sweeps H = W in {16, 32, 48, 64} around a 1x64x64x64 shape: the sweep's 64
    is the shape's own row (one timing fewer per module), and the fit still sees four sizes."""
    import json

    import hambench.profiling
    from hambench.tasks.profile import run_profile
    from hambench.trial import Trial

    measured: list[tuple[int, ...]] = []

    def profile_module(module: str, *, shape: tuple[int, ...], **kw: Any) -> dict[str, Any]:
        measured.append(shape)
        n = shape[2] * shape[3]
        return {"shape": "x".join(map(str, shape)), "macs_torchprofile": 10 * n, "latency_ms": 1e-3 * n, "params": 0,
                "device": "cpu", "device_name": "cpu"}  # fmt: skip

    monkeypatch.setattr(hambench.profiling, "profile_module", profile_module)

    class Ctx:
        def restore(self) -> None:
            return None

        def report(self, metrics: dict[str, Any], state: dict[str, Any]) -> None:
            pass

    suite = parse_suite(
        {"name": "s", "task": "profile", "grid": {"modules": ["none"]},
         "profile": {"shape": [1, 64, 64, 64], "sweep": [16, 32, 48, 64]}, "metrics": ["latency_ms"]}
    )  # fmt: skip
    trial: Trial = expand(suite)[0]
    result = run_profile(trial, Ctx())  # type: ignore[arg-type]
    assert measured == [(1, 64, 64, 64), (1, 64, 16, 16), (1, 64, 32, 32), (1, 64, 48, 48)]
    rows = json.loads(result["profile_rows"])
    assert [r["sweep_size"] for r in rows] == [None, 16, 32, 48, 64]
    assert rows[4]["latency_ms"] == rows[0]["latency_ms"] and rows[4]["exponent_macs"] == pytest.approx(1.0)
