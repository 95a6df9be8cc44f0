"""A synthetic run directory in the exact run-directory schema, for tests and the README screenshot.

Nothing here is a measurement: costs follow textbook formulas (O(n) for Hamburger, O(n^2) for
self-attention, plus a fixed 0.05 ms call overhead on every latency) and accuracies are drawn from
a seeded RNG. Its suite is called ``fixture`` and its meta.json says so, so a report rendered from
it can never pass for a real run.

As a real run, it holds the profiling trials (the context module alone at 1x512x128x128, with an
n-sweep whose small sizes fall under the timing floor) and the training trials, which carry their
module's cost and their whole model's (``model_*``, at the training crop). ``data="ade20k"`` makes
an ADE20K run at 512x512, the data set and size of the published points in references.csv.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from hambench.scaling import fit_columns, fit_sweep

# module -> (family, mIoU on the fake task, relative width of its extra cost)
MODULES = {
    "none": ("none", 38.0, 0.0),
    "ham-nmf": ("hamburger", 44.0, 1.0),
    "ham-cd": ("hamburger", 43.2, 1.2),
    "ham-vq": ("hamburger", 42.5, 0.9),
    "nonlocal": ("attention", 43.5, 2.0),
    "danet": ("attention", 43.8, 2.6),
}
BACKBONES = {"r18-d8": (13.0e6, 35e9), "van-tiny": (4.1e6, 8e9)}  # (params, MACs at 512x512) of the backbone
CROPS = {"synthetic-context": 96, "ade20k": 512}  # training crop per data set, as the suites have them
HOSTILE = "<script>alert(1)</script>"
HOSTILE_OPTION = '</script><img src=x onerror="document.body.dataset.pwned=1">'  # marks the page if it runs
SWEEP = [16, 32, 64, 96, 128]
PROFILE_SHAPE = "1x512x128x128"
NOISY = ("danet", 64)  # one sweep point whose IQR is 20 % of its median: the fit must leave it out


def _module_cost(module: str, width: float, c: int, h: int, w: int) -> dict[str, float]:
    """Textbook costs of one module on a (1, C, H, W) map: O(n C d) or O(n^2 C)."""
    n = h * w
    quadratic = MODULES.get(module, ("other", 0, 0))[0] == "attention"
    macs = width / 2 * n * n * c if quadratic else width * n * c * 64 * 7
    return {
        "params": width * 2 * c * c,
        "macs_fvcore": macs, "macs_torchprofile": macs, "flops_torch": 2 * macs,
        "latency_ms": macs / 4e9 + 0.05, "latency_iqr_ms": macs / 8e10,
        "peak_mem_bytes": 4 * (n * n if quadratic else n * 64) + 4 * n * c,
    }


def _model_cost(params: float, macs: float, crop: int) -> dict[str, object]:
    """A whole model's columns, as a trial measures them (hambench.profiling.model_cost)."""
    return {"model_params": params, "model_macs": macs, "model_macs_fvcore": macs,
            "model_latency_ms": macs / 4e9 + 0.05, "model_latency_iqr_ms": macs / 8e10,
            "model_peak_mem_bytes": 4 * 3 * crop * crop * 24, "model_shape": f"1x3x{crop}x{crop}",
            "model_cost_seconds": 1.0, "model_cost_error": ""}


def _sweep_rows(base: dict, module: str, options: dict, width: float) -> list[dict]:
    rows = []
    for size in SWEEP:
        cost = _module_cost(module, width, 512, size, size)
        if (module, size) == NOISY:
            cost["latency_iqr_ms"] = 0.2 * cost["latency_ms"]
        rows.append({**base, "module": module, "options": json.dumps(options), "shape": f"1x512x{size}x{size}",
                     "dtype": "fp32", "mode": "fwd", "sweep_size": size, **cost})
    fits = fit_columns(fit_sweep({**r, "n": r["sweep_size"] ** 2} for r in rows))  # as the profiler stores them
    return [{**r, **fits} for r in rows]


def _suite_yaml(data: str, pareto: list[dict] | None, references: str | None) -> str:
    doc: dict = {"name": "fixture", "description": "synthetic: written by hambench.reports.fixture", "task": "seg",
                 "data": data}
    if pareto is not None:
        doc["pareto"] = pareto
    if references is not None:
        doc["references"] = references
    return "# synthetic: written by hambench.reports.fixture\n" + yaml.safe_dump(doc, sort_keys=False)


def make_fixture_run(root: Path, *, seed: int = 0, run_id: str = "fixture-run", hostile: bool = False,
                     data: str = "synthetic-context", pareto: list[dict] | None = None,
                     references: str | Path | None = None) -> Path:
    """Write ``root/fixture/<run_id>/`` with results, profile, history, suite.yaml and meta.json.

    ``hostile`` adds a module named ``<script>alert(1)</script>`` (and hostile options) to check
    that the report escapes what suites and plugins supply. ``data`` is the seg trials' data set
    (``synthetic-context`` at 96x96 or ``ade20k`` at 512x512); ``pareto`` (a list of ``{x, y}``)
    and ``references`` (a CSV, copied into the run as a run does) go into its suite.yaml.
    """
    if data not in CROPS:
        raise ValueError(f"fixture data must be one of {', '.join(CROPS)}, got {data!r}")
    crop = CROPS[data]
    rng = np.random.default_rng(seed)
    run_dir = Path(root) / "fixture" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    modules = dict(MODULES)
    if hostile:
        modules[HOSTILE] = ("other", 40.0, 0.5)

    base = {"suite": "fixture", "run_id": run_id, "node": "node-0", "device": "cpu", "device_name": "CPU (fixture)"}
    rows, profile, history = [], [], []
    for module, (family, miou, width) in modules.items():
        options = {"r": 64, "steps": 6} if module.startswith("ham") else {}
        if module == HOSTILE:
            options = {"note": HOSTILE_OPTION}
        cost = _module_cost(module, width, 512, 128, 128)  # the context module alone at the profile shape
        profile.append({**base, "module": module, "options": json.dumps(options), "shape": PROFILE_SHAPE,
                        "dtype": "fp32", "mode": "fwd", "threads": 1, "torch_version": "fixture",
                        "uncounted_ops": ["aten::softmax"] if family == "attention" else [], **cost})
        profile += _sweep_rows(base, module, options, width)
        rows.append({**base, "trial_id": f"profile-{len(rows):03d}", "task": "profile", "module": module,
                     "family": family, "backbone": "none", "data": "none", "seed": 0, "options": json.dumps(options),
                     "iters": len(SWEEP) + 1, "status": "ok", "error": "", "seconds": 20.0, **cost,
                     "profile_shape": PROFILE_SHAPE})
        for backbone, (bb_params, bb_macs) in BACKBONES.items():
            for s in range(3):
                trial = f"seg-{len(rows):03d}"
                m = miou - (3.0 if backbone == "van-tiny" else 0.0) + rng.normal(0, 0.4)
                head = _module_cost(module, width, 512, crop // 8, crop // 8)  # in the model: at stride 8
                model = _model_cost(bb_params + head["params"], bb_macs * (crop / 512) ** 2 + head["macs_torchprofile"], crop)
                rows.append({**base, "trial_id": trial, "task": "seg", "module": module, "family": family,
                             "backbone": backbone, "data": data, "seed": s,
                             "options": json.dumps(options), "iters": 200, "status": "ok", "error": None,
                             "seconds": 60 + rng.uniform(0, 10), **cost, "profile_shape": PROFILE_SHAPE, **model,
                             "mIoU": m, "aAcc": 70 + m / 2})
                history += [{"trial_id": trial, "iter": it, "mIoU": m * it / 200} for it in (100, 200)]
        if family in ("hamburger", "attention", "none") and module != "ham-vq":
            for s in range(2):
                g = _module_cost(module, width, 64, 16, 16)  # the generator's module: 64 channels at 16x16
                rows.append({**base, "trial_id": f"gan-{len(rows):03d}", "task": "gan", "module": module,
                             "family": family, "backbone": "sngan-32", "data": "synthetic-shapes", "seed": s,
                             "options": json.dumps(options), "iters": 500, "status": "ok", "error": None,
                             "seconds": 30.0, **_module_cost(module, width, 256, 32, 32),
                             "profile_shape": "1x256x32x32", **_model_cost(4e5 + g["params"], 1.1e8 + g["macs_torchprofile"], 32),
                             "fid_surrogate": 60 - miou + rng.normal(0, 0.5), "symmetry_error": rng.uniform(0.05, 0.2)})
    rows.append({**base, "trial_id": "seg-failed", "task": "seg", "module": "nonlocal", "family": "attention",
                 "backbone": "r18-d8", "data": data, "seed": 3, "options": "{}", "iters": 200,
                 "status": "failed", "seconds": 2.0,
                 "error": "RuntimeError: out of memory <at> the n x n attention map (fixture)"})

    pd.DataFrame(rows).to_parquet(run_dir / "results.parquet")
    pd.DataFrame(profile).to_parquet(run_dir / "profile.parquet")
    pd.DataFrame(history).to_parquet(run_dir / "history.parquet")
    name = None
    if references is not None:  # as a run does: the file beside the results, the suite naming the copy
        shutil.copyfile(references, run_dir / Path(references).name)
        name = Path(references).name
    (run_dir / "suite.yaml").write_text(_suite_yaml(data, pareto, name))
    meta = {"suite": "fixture", "run_id": run_id, "date": "2025-01-01T00:00:00",
            "note": "synthetic fixture, not a measurement",
            "versions": {"hambench": "0.1.0", "torch": "fixture", "ray": "fixture"},
            "nodes": [{"hostname": "node-0", "cpus": 2, "gpus": 0}]}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return run_dir
