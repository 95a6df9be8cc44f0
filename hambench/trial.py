"""The unit of work: a ``Trial`` (one expanded grid point at one seed) and what it carries.

Everything a trial needs travels in this one typed object, from the suite's expansion
(``hambench.suite``) through Ray Tune's ``param_space`` (as JSON) to the task that runs it
(``hambench.tasks``). It sits at the bottom of hambench: it imports nothing of hambench, so the
suite, the tasks and the runner all depend on it and on nothing of each other for it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """A frozen model that refuses unknown fields: a typo in a suite file is an error, not a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(Strict):
    """What one trial holds while it runs. Fractions share a device (``gpu: 0.5``: two per GPU)."""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _whole_above_one(self) -> Resources:
        # Ray schedules fractions of one unit, or whole units: 0.25 and 2 are fine, 1.5 is not.
        for key in ("cpu", "gpu"):
            value = getattr(self, key)
            if value > 1 and value != int(value):
                raise ValueError(f"{key}={value}: above 1 a resource must be a whole number")
        return self


EVAL_FRACTION = 4  # a budget without eval_interval evaluates (and checkpoints) every iters // 4


class Budget(BaseModel):
    """A training trial's budget: the fields every training task applies, and as extra fields
    those its task declares besides (``Task.budget``, a subclass: seg's ``crop``, gan's ``res``),
    checked by the task's own model when the suite was loaded. A field the suite omits is the
    task's (``Task.default_budget``), ``eval_interval`` a quarter of ``iters``; None keeps the
    task's config default."""

    model_config = ConfigDict(extra="allow", frozen=True)

    iters: int = Field(gt=0)
    eval_interval: int = Field(gt=0)
    batch: int = Field(8, gt=0)
    lr: float | None = Field(None, gt=0)  # None: the task's default

    @model_validator(mode="before")
    @classmethod
    def _none_is_unset(cls, data: Any) -> Any:
        # A task's own field at None is that task's default: carried as absent, so that a budget
        # written with `crop: null` and one without it are the same budget.
        if isinstance(data, dict) and cls.model_config.get("extra") == "allow":
            return {k: v for k, v in data.items() if v is not None or k in cls.model_fields}
        return data


class TaskBudget(Budget):
    """The base of a task's own budget model (``Task.budget``): it refuses unknown fields, so a
    suite's typo fails to load, naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProfileSpec(Strict):
    """Module cost measurement: one row at ``shape`` (B, C, H, W), plus an n-sweep over H = W."""

    shape: tuple[int, int, int, int] = (1, 512, 128, 128)
    sweep: list[int] = Field(default_factory=list)
    device: str = "cpu"
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    mode: Literal["fwd", "fwd+bwd"] = "fwd"
    max_time: float = Field(10.0, gt=0)  # seconds of timed runs per latency measurement, at most
    # Force one scaled_dot_product_attention kernel (hambench.sdpa.BACKENDS); None: PyTorch's choice.
    # Either way each row's `sdpa_backend` column names the kernel that ran.
    sdpa_backend: Literal["math", "flash", "efficient", "cudnn"] | None = None
    resources: Resources = Resources()

    @field_validator("shape")
    @classmethod
    def _positive(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if min(shape) <= 0:
            raise ValueError(f"every dimension of (B, C, H, W) must be positive, got {shape}")
        return shape


class Trial(Strict):
    """One expanded grid point: everything a trainable needs, and nothing else."""

    trial_id: str
    task: str  # a registered task (hambench.tasks)
    module: str
    family: str
    options: dict[str, Any]
    backbone: str
    head: str
    data: str
    seed: int
    data_options: dict[str, Any] = Field(default_factory=dict)  # the data set's knobs (a probe's level)
    pretrained: str | None = None
    task_options: dict[str, Any] = Field(default_factory=dict)
    budget: Budget | None = None
    profile: ProfileSpec | None = None
    resources: Resources
    # The tuning protocol (a suite's ``tune:`` section, hambench.tuning.search); a plain grid
    # trial keeps the defaults. ``split``: what the trial evaluates on: "standard" (the data set's
    # usual evaluation split, as every untuned suite), or the protocol's "val" (selection) / "test"
    # (the reported figure). ``tuned``: the values the search set (already applied to the budget,
    # the task options and the module options above), recorded to group and show them.
    phase: Literal["grid", "search", "retrain"] = "grid"
    split: Literal["standard", "val", "test"] = "standard"
    sample: int | None = None  # search: the sample's index (0: the defaults); retrain: the one chosen
    # retrain: the chosen configuration, the defaults, or both (the defaults were chosen: one set of runs)
    arm: Literal["tuned", "default", "both"] | None = None
    tuned: dict[str, Any] = Field(default_factory=dict)


def options_json(options: dict[str, Any]) -> str:
    """A module's options as the results table stores them: JSON with sorted keys (one spelling)."""
    return json.dumps(options, sort_keys=True, default=str)


def data_label(data: str, options: dict[str, Any]) -> str:
    """A data set and its options as one name: ``synthetic-recall keys=2`` (no options: the name).
    It keys the roots the driver prepares and names a comparison in tables."""
    return " ".join([data, *(f"{k}={v}" for k, v in sorted(options.items()))])
