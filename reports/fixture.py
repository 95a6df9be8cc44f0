"""A synthetic run directory in the exact run-directory schema, for tests and the README screenshot.

Nothing here is a measurement: costs follow textbook formulas (O(n) for Hamburger, O(n^2) for
self-attention) and accuracies are drawn from a seeded RNG. Its suite is called ``fixture`` and its
meta.json says so, so a report rendered from it can never pass for a real run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

# module -> (family, mIoU on the fake task, relative width of its extra cost)
MODULES = {
    "none": ("none", 38.0, 0.0),
    "ham-nmf": ("hamburger", 44.0, 1.0),
    "ham-cd": ("hamburger", 43.2, 1.2),
    "ham-vq": ("hamburger", 42.5, 0.9),
    "nonlocal": ("attention", 43.5, 2.0),
    "danet": ("attention", 43.8, 2.6),
}
BACKBONES = {"r18-d8": (13.0e6, 35e9), "van-tiny": (4.1e6, 8e9)}  # (params, MACs) of the backbone
HOSTILE = "<script>alert(1)</script>"
HOSTILE_OPTION = '</script><img src=x onerror="document.body.dataset.pwned=1">'  # marks the page if it runs
SWEEP = [16, 32, 64]


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


def make_fixture_run(root: Path, *, seed: int = 0, run_id: str = "fixture-run", hostile: bool = False) -> Path:
    """Write ``root/fixture/<run_id>/`` with results, profile, history, suite.yaml and meta.json.

    ``hostile`` adds a module named ``<script>alert(1)</script>`` (and hostile options) to check
    that the report escapes what suites and plugins supply.
    """
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
        cost = _module_cost(module, width, 512, 128, 128)
        profile.append({**base, "module": module, "options": json.dumps(options), "shape": "1x512x128x128",
                        "dtype": "fp32", "mode": "fwd", "threads": 1, "torch_version": "fixture",
                        "uncounted_ops": ["aten::softmax"] if family == "attention" else [], **cost})
        exponents = {"exponent_macs": 2.0 if family == "attention" else 1.0 if width else None}
        for size in SWEEP:
            row = {**base, "module": module, "options": json.dumps(options), "shape": f"1x512x{size}x{size}",
                   "dtype": "fp32", "mode": "fwd", "sweep_size": size, **_module_cost(module, width, 512, size, size)}
            profile.append({**row, **exponents})
        for backbone, (bb_params, bb_macs) in BACKBONES.items():
            for s in range(3):
                trial = f"seg-{len(rows):03d}"
                m = miou - (3.0 if backbone == "van-tiny" else 0.0) + rng.normal(0, 0.4)
                head = _module_cost(module, width, 512, 64, 64)
                rows.append({**base, "trial_id": trial, "task": "seg", "module": module, "family": family,
                             "backbone": backbone, "data": "synthetic-context", "seed": s,
                             "options": json.dumps(options), "iters": 200, "status": "ok", "error": None,
                             "seconds": 60 + rng.uniform(0, 10), **head,
                             "params": bb_params + head["params"], "macs_fvcore": bb_macs + head["macs_fvcore"],
                             "macs_torchprofile": bb_macs + head["macs_torchprofile"], "profile_shape": "1x3x512x512",
                             "mIoU": m, "aAcc": 70 + m / 2})
                history += [{"trial_id": trial, "iter": it, "mIoU": m * it / 200} for it in (100, 200)]
        if family in ("hamburger", "attention", "none") and module != "ham-vq":
            for s in range(2):
                rows.append({**base, "trial_id": f"gan-{len(rows):03d}", "task": "gan", "module": module,
                             "family": family, "backbone": "sngan-32", "data": "synthetic-shapes", "seed": s,
                             "options": json.dumps(options), "iters": 500, "status": "ok", "error": None,
                             "seconds": 30.0, **_module_cost(module, width, 256, 32, 32),
                             "profile_shape": "1x256x32x32", "fid_surrogate": 60 - miou + rng.normal(0, 0.5),
                             "symmetry_error": rng.uniform(0.05, 0.2)})
    rows.append({**base, "trial_id": "seg-failed", "task": "seg", "module": "nonlocal", "family": "attention",
                 "backbone": "r18-d8", "data": "synthetic-context", "seed": 3, "options": "{}", "iters": 200,
                 "status": "failed", "seconds": 2.0,
                 "error": "RuntimeError: out of memory <at> the n x n attention map (fixture)"})

    pd.DataFrame(rows).to_parquet(run_dir / "results.parquet")
    pd.DataFrame(profile).to_parquet(run_dir / "profile.parquet")
    pd.DataFrame(history).to_parquet(run_dir / "history.parquet")
    (run_dir / "suite.yaml").write_text("name: fixture\n# synthetic: written by hambench.reports.fixture\n")
    meta = {"suite": "fixture", "run_id": run_id, "date": "2025-01-01T00:00:00",
            "note": "synthetic fixture, not a measurement",
            "versions": {"hambench": "0.1.0", "torch": "fixture", "ray": "fixture"},
            "nodes": [{"hostname": "node-0", "cpus": 2, "gpus": 0}]}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return run_dir
