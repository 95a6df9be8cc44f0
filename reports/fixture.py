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
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hambench.scaling import sweep_columns

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
        "macs_fvcore": macs,
        "macs_torchprofile": macs,
        "flops_torch": 2 * macs,
        "latency_ms": macs / 4e9 + 0.05,
        "latency_iqr_ms": macs / 8e10,
        "peak_mem_bytes": 4 * (n * n if quadratic else n * 64) + 4 * n * c,
    }


def _model_cost(params: float, macs: float, crop: int) -> dict[str, object]:
    """A whole model's columns, as a trial measures them (hambench.profiling.model_cost)."""
    return {
        "model_params": params,
        "model_macs": macs,
        "model_macs_fvcore": macs,
        "model_latency_ms": macs / 4e9 + 0.05,
        "model_latency_iqr_ms": macs / 8e10,
        "model_peak_mem_bytes": 4 * 3 * crop * crop * 24,
        "model_shape": f"1x3x{crop}x{crop}",
        "model_cost_seconds": 1.0,
        "model_cost_error": "",
    }


def _sweep_rows(base: dict, module: str, options: dict, width: float) -> list[dict]:
    rows = []
    for size in SWEEP:
        cost = _module_cost(module, width, 512, size, size)
        if (module, size) == NOISY:
            cost["latency_iqr_ms"] = 0.2 * cost["latency_ms"]
        rows.append(
            {
                **base,
                "module": module,
                "options": json.dumps(options),
                "shape": f"1x512x{size}x{size}",
                "dtype": "fp32",
                "mode": "fwd",
                "sweep_size": size,
                **cost,
            }
        )
    fits = sweep_columns(rows)  # the profiler's own fit (hambench.scaling.sweep_columns)
    return [{**r, **fits} for r in rows]


def _profiling_trial(
    base: dict, trial_id: str, module: str, family: str, options: dict, width: float
) -> tuple[list[dict], list[dict]]:
    """A profiling trial: its results row and its profile.parquet rows (the profile shape, then the n-sweep)."""
    cost = _module_cost(module, width, 512, 128, 128)  # the context module alone at the profile shape
    profile = [
        {
            **base,
            "module": module,
            "options": json.dumps(options),
            "shape": PROFILE_SHAPE,
            "dtype": "fp32",
            "mode": "fwd",
            "threads": 1,
            "torch_version": "fixture",
            "uncounted_ops": ["aten::softmax"] if family == "attention" else [],
            **cost,
        }
    ]
    profile += _sweep_rows(base, module, options, width)
    row = {
        **base,
        "trial_id": trial_id,
        "task": "profile",
        "module": module,
        "family": family,
        "backbone": "none",
        "data": "none",
        "seed": 0,
        "options": json.dumps(options),
        "iters": len(SWEEP) + 1,
        "status": "ok",
        "error": "",
        "seconds": 20.0,
        **cost,
        "profile_shape": PROFILE_SHAPE,
    }
    return [row], profile


def _suite_yaml(data: str, pareto: list[dict] | None, references: str | None, **extra: object) -> str:
    doc: dict = {
        "name": "fixture",
        "description": "synthetic: written by hambench.reports.fixture",
        "task": "seg",
        "data": data,
        **extra,
    }
    if pareto is not None:
        doc["pareto"] = pareto
    if references is not None:
        doc["references"] = references
    return "# synthetic: written by hambench.reports.fixture\n" + yaml.safe_dump(doc, sort_keys=False)


def make_fixture_run(
    root: Path,
    *,
    seed: int = 0,
    run_id: str = "fixture-run",
    hostile: bool = False,
    data: str = "synthetic-context",
    pareto: list[dict] | None = None,
    references: str | Path | None = None,
) -> Path:
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
    rows: list[dict] = []
    profile: list[dict] = []
    history: list[dict] = []
    for module, (family, miou, width) in modules.items():
        options: dict[str, object] = {"r": 64, "steps": 6} if module.startswith("ham") else {}
        if module == HOSTILE:
            options = {"note": HOSTILE_OPTION}
        cost = _module_cost(module, width, 512, 128, 128)  # the context module alone at the profile shape
        trial_rows, trial_profile = _profiling_trial(base, f"profile-{len(rows):03d}", module, family, options, width)
        rows += trial_rows
        profile += trial_profile
        for backbone, (bb_params, bb_macs) in BACKBONES.items():
            for s in range(3):
                trial = f"seg-{len(rows):03d}"
                m = miou - (3.0 if backbone == "van-tiny" else 0.0) + rng.normal(0, 0.4)
                head = _module_cost(module, width, 512, crop // 8, crop // 8)  # in the model: at stride 8
                model = _model_cost(
                    bb_params + head["params"], bb_macs * (crop / 512) ** 2 + head["macs_torchprofile"], crop
                )
                rows.append(
                    {
                        **base,
                        "trial_id": trial,
                        "task": "seg",
                        "module": module,
                        "family": family,
                        "backbone": backbone,
                        "data": data,
                        "seed": s,
                        "options": json.dumps(options),
                        "iters": 200,
                        "status": "ok",
                        "error": None,
                        "seconds": 60 + rng.uniform(0, 10),
                        **cost,
                        "profile_shape": PROFILE_SHAPE,
                        **model,
                        "mIoU": m,
                        "aAcc": 70 + m / 2,
                    }
                )
                history += [{"trial_id": trial, "iter": it, "mIoU": m * it / 200} for it in (100, 200)]
        if family in ("hamburger", "attention", "none") and module != "ham-vq":
            for s in range(2):
                g = _module_cost(module, width, 64, 16, 16)  # the generator's module: 64 channels at 16x16
                rows.append(
                    {
                        **base,
                        "trial_id": f"gan-{len(rows):03d}",
                        "task": "gan",
                        "module": module,
                        "family": family,
                        "backbone": "sngan-32",
                        "data": "synthetic-shapes",
                        "seed": s,
                        "options": json.dumps(options),
                        "iters": 500,
                        "status": "ok",
                        "error": None,
                        "seconds": 30.0,
                        **_module_cost(module, width, 256, 32, 32),
                        "profile_shape": "1x256x32x32",
                        **_model_cost(4e5 + g["params"], 1.1e8 + g["macs_torchprofile"], 32),
                        "fid_surrogate": 60 - miou + rng.normal(0, 0.5),
                        "symmetry_error": rng.uniform(0.05, 0.2),
                    }
                )
    rows.append(
        {
            **base,
            "trial_id": "seg-failed",
            "task": "seg",
            "module": "nonlocal",
            "family": "attention",
            "backbone": "r18-d8",
            "data": data,
            "seed": 3,
            "options": "{}",
            "iters": 200,
            "status": "failed",
            "seconds": 2.0,
            "error": "RuntimeError: out of memory <at> the n x n attention map (fixture)",
        }
    )

    pd.DataFrame(rows).to_parquet(run_dir / "results.parquet")
    pd.DataFrame(profile).to_parquet(run_dir / "profile.parquet")
    pd.DataFrame(history).to_parquet(run_dir / "history.parquet")
    name = None
    if references is not None:  # as a run does: the file beside the results, the suite naming the copy
        shutil.copyfile(references, run_dir / Path(references).name)
        name = Path(references).name
    (run_dir / "suite.yaml").write_text(_suite_yaml(data, pareto, name))
    _write_meta(run_dir, run_id)
    return run_dir


def _write_meta(run_dir: Path, run_id: str, **more: Any) -> None:
    """The run's meta.json as a run writes it (made-up versions and node), ``more`` at its end."""
    meta = {
        "suite": "fixture",
        "run_id": run_id,
        "date": "2025-01-01T00:00:00",
        "note": "synthetic fixture, not a measurement",
        "versions": {"hambench": "0.1.0", "torch": "fixture", "ray": "fixture"},
        "nodes": [{"hostname": "node-0", "cpus": 2, "gpus": 0}],
        **more,
    }
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))


# --- a tuned run: the tuning protocol's search and retrain ------------------------------------------

TUNED_MODULES = ("none", "ham-nmf", "nonlocal")
TUNE_SPACE = {"lr": (0.02, 0.5), "weight_decay": (1e-5, 1e-3)}  # log-uniform, as suites/synthetic-tuned.yaml
TUNE_DEFAULTS = {"lr": 0.1, "weight_decay": 1e-4}  # the budget's lr, seg's decay: sample 0 and the default arm
TUNE_ITERS, TUNE_EVAL, TUNE_GRACE, TUNE_REDUCTION, TUNE_SEED = 200, 50, 50, 3, 1000
TUNED_SEEDS = (0, 1, 2)  # the grid's seeds: the retrain's
KEPT_DEFAULTS = "none"  # on this module sample 0 scores best on validation: the defaults are chosen
BEST_LR = {"none": 0.1, "ham-nmf": 0.2, "nonlocal": 0.045}  # each module its own (made-up) best learning rate
FAILED_SAMPLE = "nonlocal"  # this module's last sample fails (out of memory): never chosen, no score


def _tuned_draws(samples: int) -> list[dict[str, float]]:
    """The search's configurations: sample 0 the defaults, then log-uniform draws of TUNE_SPACE that
    depend on TUNE_SEED only (the same for every module, as the protocol's shared space); stratified,
    so that a handful of samples spans each range and the figures have something to show."""
    rng = np.random.default_rng(TUNE_SEED)
    n = samples - 1
    unit = {k: (rng.permutation(n) + rng.uniform(size=n)) / n for k in TUNE_SPACE}  # one draw per stratum
    drawn = [{k: float(lo * (hi / lo) ** unit[k][i]) for k, (lo, hi) in TUNE_SPACE.items()} for i in range(n)]
    return [dict(TUNE_DEFAULTS), *drawn]


def _tuning_gain(values: dict[str, float], best_lr: float) -> float:
    """A made-up response of the accuracy to the tuned values: best at ``best_lr`` and a decay of 3e-4."""
    return -8.0 * np.log10(values["lr"] / best_lr) ** 2 - 0.3 * np.log10(values["weight_decay"] / 3e-4) ** 2


def _curve(final: float, it: int) -> float:
    """The made-up validation score at iteration ``it`` of a sample that would end at ``final``."""
    return final * (0.7 + 0.3 * it / TUNE_ITERS)


def _asha_statuses(finals: list[float], failed: set[int]) -> list[tuple[str, int | None]]:
    """(status, iterations reached) per sample, by the rule of Ray Tune's asynchronous successive
    halving, samples arriving in index order: at each rung a sample whose score is below the
    (1 - 1/reduction) quantile of the scores already recorded there is stopped."""
    rungs = [TUNE_GRACE * TUNE_REDUCTION**k for k in range(8) if TUNE_GRACE * TUNE_REDUCTION**k < TUNE_ITERS]
    recorded: dict[int, list[float]] = {r: [] for r in rungs}
    out: list[tuple[str, int | None]] = []
    for i, final in enumerate(finals):
        if i in failed:
            out.append(("failed", None))
            continue
        status, reached = "ok", TUNE_ITERS
        for rung in rungs:
            score = _curve(final, rung)
            cutoff = np.percentile(recorded[rung], (1 - 1 / TUNE_REDUCTION) * 100) if recorded[rung] else None
            recorded[rung].append(score)
            if cutoff is not None and score < cutoff:
                status, reached = "stopped", rung
                break
        out.append((status, reached))
    return out


def _history(trial_id: str, final: float, reached: int | None) -> list[dict]:
    return [
        {"trial_id": trial_id, "iter": it, "mIoU": _curve(final, it)}
        for it in range(TUNE_EVAL, (reached or 0) + 1, TUNE_EVAL)
    ]


def make_tuned_fixture_run(
    root: Path, *, seed: int = 0, run_id: str = "fixture-tuned", samples: int = 6, hostile: bool = False
) -> Path:
    """Write ``root/fixture/<run_id>/``: a seg run of the tuning protocol (a suite with ``tune:``), in
    the exact results schema of one (``hambench.schema``, ``hambench.tuning.tables``).

    Per module of TUNED_MODULES: a profiling trial (phase ``grid``); ``samples`` search rows (phase
    ``search``, split ``val``, sample 0 the defaults, seed TUNE_SEED + sample, the score under
    ``val_mIoU``/``val_aAcc`` with ``mIoU``/``aAcc`` empty, status ``ok``, ``stopped`` by a toy of
    ASHA's rule with ``iters`` the iteration reached, or ``failed``); the retrain (phase
    ``retrain``, split ``test``): the best completed sample (arm ``tuned``, ``sample`` set) and the
    defaults (arm ``default``) with seeds TUNED_SEEDS, or, where the defaults are chosen, one set
    of both (arm ``both``). On KEPT_DEFAULTS the defaults win the search;
    FAILED_SAMPLE's last sample fails. Every accuracy is made up, as in ``make_fixture_run``;
    ``hostile`` adds the module named ``<script>alert(1)</script>``.
    """
    if samples < 2:
        raise ValueError(f"a tuned fixture needs at least 2 samples (the defaults and a draw), got {samples}")
    rng = np.random.default_rng(seed)
    run_dir = Path(root) / "fixture" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    modules = {m: MODULES[m] for m in TUNED_MODULES}
    if hostile:
        modules[HOSTILE] = ("other", 40.0, 0.5)
    draws = _tuned_draws(samples)
    crop = CROPS["synthetic-context"]
    ((bb_params, bb_macs),) = [BACKBONES["r18-d8"]]

    base = {
        "suite": "fixture",
        "run_id": run_id,
        "node": "node-0",
        "device": "cpu",
        "device_name": "CPU (fixture)",
        "phase": "grid",
        "split": "standard",
        "sample": None,
        "arm": None,
        "tuned": "",
    }
    rows, profile, history, choices = [], [], [], []
    for m, (module, (family, miou, width)) in enumerate(modules.items()):
        options: dict[str, object] = {"r": 64, "steps": 6} if module.startswith("ham") else {}
        if module == HOSTILE:
            options = {"note": HOSTILE_OPTION}
        trial_rows, trial_profile = _profiling_trial(base, f"profile-{m:03d}", module, family, options, width)
        rows += trial_rows
        profile += trial_profile
        head = _module_cost(module, width, 512, crop // 8, crop // 8)
        model = _model_cost(bb_params + head["params"], bb_macs * (crop / 512) ** 2 + head["macs_torchprofile"], crop)
        train = {
            **base,
            "task": "seg",
            "module": module,
            "family": family,
            "backbone": "r18-d8",
            "head": "context",
            "data": "synthetic-context",
            "options": json.dumps(options),
            "options_given": json.dumps(options),
            "error": "",
            **_module_cost(module, width, 512, 128, 128),
            "profile_shape": PROFILE_SHAPE,
            **model,
        }
        best_lr = BEST_LR.get(module, 0.3)
        finals = [miou + _tuning_gain(v, best_lr) + rng.normal(0, 0.3) for v in draws]
        if module == KEPT_DEFAULTS:
            finals[0] = max(finals[1:]) + 0.5
        failed = {samples - 1} if module == FAILED_SAMPLE else set()
        statuses = _asha_statuses(finals, failed)
        for i, (values, final, (status, reached)) in enumerate(zip(draws, finals, statuses)):
            trial = f"seg-{m:03d}-search{i}"
            score = _curve(final, reached) if reached else None
            rows.append(
                {
                    **train,
                    "trial_id": trial,
                    "seed": TUNE_SEED + i,
                    "iters": reached,
                    "status": status,
                    "seconds": 0.3 * (reached or 5),
                    "phase": "search",
                    "split": "val",
                    "sample": i,
                    "tuned": json.dumps(values, sort_keys=True),
                    "error": "RuntimeError: out of memory (fixture)" if status == "failed" else "",
                    "val_mIoU": score,
                    "val_aAcc": None if score is None else 70 + score / 2,
                }
            )
            history += _history(trial, final, reached)
        done = [(finals[i], i) for i, (status, _) in enumerate(statuses) if status == "ok"]
        chosen = max(done, key=lambda fi: (fi[0], -fi[1]))[1]  # the best completed; ties: the lower index
        choices.append(
            {
                "module": module,
                "options": options,
                "backbone": "r18-d8",
                "data": "synthetic-context",
                "sample": chosen,
                "tuned": draws[chosen],
                "val_score": _curve(finals[chosen], TUNE_ITERS),
                "completed": len(done),
            }
        )
        # As the retrain does: where the defaults are chosen, one set of runs is both arms.
        arms = (
            [("both", chosen, TUNE_DEFAULTS)]
            if chosen == 0
            else [("tuned", chosen, draws[chosen]), ("default", None, TUNE_DEFAULTS)]
        )
        for arm, sample, values in arms:
            for s in TUNED_SEEDS:
                trial = f"seg-{m:03d}-{arm}-s{s}"
                test = miou - 0.5 + _tuning_gain(values, best_lr) + rng.normal(0, 0.4)
                rows.append(
                    {
                        **train,
                        "trial_id": trial,
                        "seed": s,
                        "iters": TUNE_ITERS,
                        "status": "ok",
                        "seconds": 60 + rng.uniform(0, 10),
                        "phase": "retrain",
                        "split": "test",
                        "sample": sample,
                        "arm": arm,
                        "tuned": json.dumps(values, sort_keys=True),
                        "mIoU": test,
                        "aAcc": 70 + test / 2,
                    }
                )
                history += _history(trial, test, TUNE_ITERS)

    results = pd.DataFrame(rows)
    results["sample"] = pd.array(results["sample"], dtype="Int64")  # as hambench.tuning.tables writes it
    results.to_parquet(run_dir / "results.parquet")
    pd.DataFrame(profile).to_parquet(run_dir / "profile.parquet")
    pd.DataFrame(history).to_parquet(run_dir / "history.parquet")
    tune = {
        "space": {k: {"loguniform": list(v)} for k, v in TUNE_SPACE.items()},
        "samples": samples,
        "scheduler": "asha",
        "grace": TUNE_GRACE,
        "reduction": TUNE_REDUCTION,
        "seed": TUNE_SEED,
    }
    budget = {"iters": TUNE_ITERS, "eval_interval": TUNE_EVAL, "lr": TUNE_DEFAULTS["lr"]}  # the decay: seg's default
    (run_dir / "suite.yaml").write_text(_suite_yaml("synthetic-context", None, None, budget=budget, tune=tune))
    _write_meta(run_dir, run_id, tuning=choices)
    return run_dir
