"""The cluster configs under cluster/ against Ray's own readers.

Launcher YAMLs go through what `ray up` does before it touches a cloud: ``prepare_config`` (merge
the provider's defaults) then ``validate_config`` (Ray's JSON schema, ray-schema.json). The KubeRay
manifest goes through the Ray autoscaler's reader of a RayCluster resource
(``_derive_autoscaling_config_from_ray_cr``, which validates its result with the same schema), and
its fields are checked against what the KubeRay CRD requires.
"""

from __future__ import annotations

import copy
import json
import math
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import tomllib
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr
from ray.autoscaler._private.util import prepare_config, validate_config

from hambench.suite import load_suite
from hambench.tuning import DEVICE_RESOURCE, trial_resources
from hambench.tuning.plan import expand

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER_CONFIGS = ["aws.yaml", "gcp.yaml", "onprem.yaml"]
CLOUD_CONFIGS = ["aws.yaml", "gcp.yaml"]
HAMBENCH_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "cluster" / name).read_text())


def ray_validate(config: dict) -> dict:
    """What `ray up` checks before it starts a node: defaults merged, then Ray's schema."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_passes_rays_validator(name: str) -> None:
    ray_validate(load(name))


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c.update(max_worker=4),  # misspelled top-level key
        lambda c: c["auth"].update(ssh_password="x"),  # no such auth field
        lambda c: c["available_node_types"]["gpu"]["resources"].update(GPU=0.5),  # resources are integers
    ],
    ids=["unknown-key", "unknown-auth-field", "fractional-gpu"],
)
def test_rays_validator_rejects_a_broken_config(break_it) -> None:
    # The validator really checks: the same config, broken, fails.
    config = load("aws.yaml")
    break_it(config)
    with pytest.raises(jsonschema.ValidationError):
        ray_validate(config)


GPU_SUITES = ["ade20k-pareto", "module-cost"]  # shipped suites whose trials ask for GPUs


def trial_requests(names: list[str]) -> list[dict[str, float]]:
    """The Ray resources each trial of these suites asks for, as `hambench run suite` requests them."""
    return [trial_resources({"trial": t.model_dump()}) for name in names for t in expand(load_suite(name))]


def fits(request: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(key, 0) >= amount for key, amount in request.items() if amount > 0)


def left_after(request: dict[str, float], node: dict[str, float]) -> dict[str, float]:
    return {key: amount - request.get(key, 0) for key, amount in node.items()}


def assert_schedulable(head: dict[str, float], workers: list[dict[str, float]]) -> None:
    """Every trial fits on a worker and none on the head; a profiling trial leaves no room beside it."""
    requests = trial_requests(GPU_SUITES)
    profiling = [r for r in requests if r.get(DEVICE_RESOURCE) == 1.0]
    assert requests and profiling
    for request in requests:
        assert not fits(request, head), f"a trial {request} would run on the head {head}"
        assert any(fits(request, node) for node in workers), f"no worker takes {request}: {workers}"
    for node in workers:
        for alone in profiling:
            if fits(alone, node):
                assert not any(fits(other, left_after(alone, node)) for other in requests), (
                    "a trial fits beside profiling"
                )


@pytest.mark.parametrize("name", CLOUD_CONFIGS)
def test_cloud_config_schedules_every_trial_on_an_autoscaled_worker(name: str) -> None:
    config = ray_validate(load(name))
    types = config["available_node_types"]
    workers = [t for key, t in types.items() if key != config["head_node_type"]]
    assert_schedulable(types[config["head_node_type"]]["resources"], [w["resources"] for w in workers])
    for worker in workers:  # GPU machines start when trials wait and stop when idle
        assert worker["min_workers"] == 0 < worker["max_workers"] <= config["max_workers"]


def ray_start(commands: list[str]) -> dict:
    """The options of the `ray start` among a node's start commands, read by Ray's own CLI parser."""
    from ray.scripts.scripts import start

    line = next(c for c in commands if "ray start" in c)
    return start.make_context("start", shlex.split(line.split("ray start", 1)[1])).params


def node_resources(options: dict) -> dict[str, float]:
    """What a node started with these options offers; a count left to Ray is the machine's (any)."""
    cpus = math.inf if options["num_cpus"] is None else options["num_cpus"]
    gpus = math.inf if options["num_gpus"] is None else options["num_gpus"]
    return {"CPU": cpus, "GPU": gpus, **json.loads(options["resources"] or "{}")}


def test_onprem_start_commands_schedule_every_trial_on_a_worker() -> None:
    # Ray's local provider has one internal node type; head and workers differ by their `ray start`.
    config = ray_validate(load("onprem.yaml"))
    assert len(config["provider"]["worker_ips"]) == config["max_workers"]
    head, worker = ray_start(config["head_start_ray_commands"]), ray_start(config["worker_start_ray_commands"])
    assert head["head"] and not worker["head"] and worker["address"].endswith(":6379")
    assert_schedulable(node_resources(head), [node_resources(worker)])


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_pins_versions_and_closes_the_cluster(name: str) -> None:
    config = ray_validate(load(name))
    setup = "\n".join(config["setup_commands"])
    # hambench from the synced checkout, refused by pip unless it has pyproject's version.
    assert config["file_mounts"]["~/hambench"] == "."
    assert f'~/hambench "hambench=={HAMBENCH_VERSION}"' in setup
    # The launcher's Ray must match the cluster's: the pin is the Ray this repository runs.
    assert f"ray[default,tune,train]=={ray.__version__}" in setup
    assert '"torch==' in setup and '"torchvision==' in setup
    # Nothing open: dashboard on loopback only, token authentication on every node and driver.
    head_start, worker_start = (
        " ".join(config["head_start_ray_commands"]),
        " ".join(config["worker_start_ray_commands"]),
    )
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "RAY_AUTH_MODE=token ray start --head" in head_start
    assert "RAY_AUTH_MODE=token ray start --address=" in worker_start
    assert "export RAY_AUTH_MODE=token" in setup  # for drivers started in `ray attach`
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_shares_one_file_system_at_one_path(name: str) -> None:
    # Run directories, data and generated data sets are paths the driver hands to trials on other
    # nodes: they must name the same files everywhere.
    config = ray_validate(load(name))
    assert any(c.startswith("mountpoint -q /mnt/shared || sudo mount") for c in config["initialization_commands"])
    assert "export HAMBENCH_CACHE=/mnt/shared/cache" in "\n".join(config["setup_commands"])


def kuberay_docs() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((ROOT / "cluster" / "kuberay.yaml").read_text()) if d]
    return {d["kind"]: d for d in docs}


def test_kuberay_manifest_names_the_fields_kuberay_requires() -> None:
    cr = kuberay_docs()["RayCluster"]
    assert cr["apiVersion"] == "ray.io/v1"
    assert cr["metadata"]["name"] and cr["metadata"]["namespace"]
    spec = cr["spec"]
    # Required by the RayCluster CRD: headGroupSpec{rayStartParams, template}, and per worker group
    # groupName, minReplicas, maxReplicas, rayStartParams, template; containers need name and image.
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        assert isinstance(group["rayStartParams"], dict)
        containers = group["template"]["spec"]["containers"]
        assert containers and all(c["name"] and c["image"] for c in containers)
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and 0 <= group["minReplicas"] <= group["maxReplicas"]
    images = {g["template"]["spec"]["containers"][0]["image"] for g in groups}
    assert len(images) == 1, f"head and workers must run one image, found {images}"
    assert images.pop().endswith(f":{HAMBENCH_VERSION}")
    assert spec["rayVersion"] == ray.__version__
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["authOptions"]["mode"] == "token"
    assert spec["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP", "no LoadBalancer / NodePort"


def test_kuberay_gpu_workers_and_shared_volume() -> None:
    docs = kuberay_docs()
    spec = docs["RayCluster"]["spec"]
    (gpu,) = spec["workerGroupSpecs"]
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1
    claim = docs["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for group in (spec["headGroupSpec"], gpu):
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        shared = [
            n
            for n, v in volumes.items()
            if v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]
        ]
        assert shared and mounts[shared[0]] == "/mnt/shared"
        assert {"name": "HAMBENCH_CACHE", "value": "/mnt/shared/cache"} in pod["containers"][0]["env"]


def test_kuberay_manifest_as_the_ray_autoscaler_reads_it() -> None:
    # The autoscaler inside the head pod turns the RayCluster into this config (schema-validated).
    config = _derive_autoscaling_config_from_ray_cr(kuberay_docs()["RayCluster"])
    types = config["available_node_types"]
    head = types.pop("headgroup")
    (gpu,) = types.values()
    assert head["resources"]["CPU"] == 0 and "GPU" not in head["resources"]
    assert gpu["resources"]["GPU"] == 1 and gpu["resources"]["CPU"] >= 8
    assert gpu["min_workers"] == 0 < gpu["max_workers"]
    assert head["resources"][DEVICE_RESOURCE] == gpu["resources"][DEVICE_RESOURCE] == 1
