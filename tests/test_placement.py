"""How profiling trials hold their node: a ``hambench_device`` unit where every node has one, else
the whole node (all the CPUs of the largest node that can run them). Plain functions, no Ray."""

from __future__ import annotations

import pytest

from hambench.suite import parse_suite
from hambench.tuning import DEVICE_RESOURCE, PROFILE_CPUS, TRAIN_SHARE, SuiteRunError, profile_cpus, trial_resources
from hambench.tuning.plan import expand


def node(cpus: float, gpus: float = 0, device: bool = False, alive: bool = True) -> dict:
    resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {}), **({DEVICE_RESOURCE: 1.0} if device else {})}
    return {"Alive": alive, "Resources": resources}


def trials(device: str = "cpu") -> list:
    suite = parse_suite(
        {
            "name": "p",
            "grid": {"modules": ["none"]},
            "profile": {
                "shape": [1, 8, 8, 8],
                "device": device,
                "resources": {"cpu": 1, "gpu": 1 if device == "cuda" else 0},
            },
        }
    )
    return expand(suite)


def test_every_node_with_a_device_unit_keeps_the_unit() -> None:
    head = node(0)  # a head without CPUs runs no trial: it needs no unit
    assert profile_cpus([head, node(4, device=True), node(8, device=True)], trials()) is None


def test_without_the_unit_a_profiling_trial_takes_the_largest_node() -> None:
    assert profile_cpus([node(0), node(4), node(8), node(16, alive=False)], trials()) == 8
    assert profile_cpus([node(4, device=True), node(2)], trials()) == 4  # one node lacking it: whole-node mode
    # Profiling on cuda: the largest node with a GPU, however large the CPU-only ones are.
    assert profile_cpus([node(32), node(8, gpus=2), node(4, gpus=1)], trials("cuda")) == 8
    with pytest.raises(SuiteRunError, match="profile.device is cuda but no node of the Ray cluster has a GPU"):
        profile_cpus([node(8)], trials("cuda"))
    with pytest.raises(SuiteRunError, match="no node of the Ray cluster has CPUs"):
        profile_cpus([node(0)], trials())


def test_trial_resources_in_each_mode() -> None:
    prof, train = (t.model_dump() for t in trials())
    assert trial_resources({"trial": prof}) == {"CPU": 1.0, "GPU": 0.0, DEVICE_RESOURCE: 1.0}
    assert trial_resources({"trial": train}) == {"CPU": 1.0, "GPU": 0.0, DEVICE_RESOURCE: TRAIN_SHARE}
    assert trial_resources({"trial": prof, PROFILE_CPUS: None})[DEVICE_RESOURCE] == 1.0
    # Whole node: the profiling trial holds every CPU; a training trial holds what it asks, no unit.
    assert trial_resources({"trial": prof, PROFILE_CPUS: 8.0}) == {"CPU": 8.0, "GPU": 0.0}
    assert trial_resources({"trial": train, PROFILE_CPUS: 8.0}) == {"CPU": 1.0, "GPU": 0.0}
    cuda = trials("cuda")[0].model_dump()
    assert trial_resources({"trial": cuda, PROFILE_CPUS: 8.0}) == {"CPU": 8.0, "GPU": 1.0}
