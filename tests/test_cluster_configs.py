"""The cluster configs under cluster/ against Ray's own readers.

Launcher YAMLs go through what `ray up` does before it touches a cloud: ``prepare_config`` (merge
the provider's defaults) then ``validate_config`` (Ray's JSON schema, ray-schema.json). The KubeRay
manifest goes through the Ray autoscaler's reader of a RayCluster resource
(``_derive_autoscaling_config_from_ray_cr``, which validates its result with the same schema), and
its fields are checked against what the KubeRay CRD requires.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr
from ray.autoscaler._private.util import prepare_config, validate_config

from hambench.tuning import DEVICE_RESOURCE

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


@pytest.mark.parametrize("name", CLOUD_CONFIGS)
def test_cloud_config_has_a_cpu_head_and_autoscaled_gpu_workers(name: str) -> None:
    config = ray_validate(load(name))
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = [t for key, t in types.items() if key != config["head_node_type"]]
    assert head["resources"]["CPU"] == 0 and head["resources"].get("GPU", 0) == 0, "the head takes no trial"
    assert len(workers) == 1
    gpu = workers[0]
    assert gpu["resources"]["GPU"] >= 1 and gpu["resources"]["CPU"] >= 8
    assert gpu["min_workers"] == 0 < gpu["max_workers"] <= config["max_workers"]
    for node_type in types.values():
        assert node_type["resources"][DEVICE_RESOURCE] == 1, f"`hambench run suite` needs {DEVICE_RESOURCE} on every node"


def test_onprem_roles_come_from_the_start_commands() -> None:
    # Ray's local provider has one internal node type; head and GPU workers differ by `ray start` flags.
    config = ray_validate(load("onprem.yaml"))
    assert len(config["provider"]["worker_ips"]) == config["max_workers"]
    head_start = " ".join(config["head_start_ray_commands"])
    worker_start = " ".join(config["worker_start_ray_commands"])
    assert "--num-cpus=0" in head_start and "--num-cpus" not in worker_start and "--num-gpus=0" not in worker_start
    for start in (head_start, worker_start):
        assert f"""--resources='{{"{DEVICE_RESOURCE}": 1}}'""" in start


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
    head_start, worker_start = " ".join(config["head_start_ray_commands"]), " ".join(config["worker_start_ray_commands"])
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
        shared = [n for n, v in volumes.items() if v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]]
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
