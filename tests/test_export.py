"""``hambench export``: a trial of a run folder as a standalone mmseg config that plain mmengine
trains in a fresh process, with no hambench code in between but its heads (``custom_imports``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hambench.cli.main import main
from hambench.suite import parse_suite
from hambench.tuning.export import best_trial, exported_config
from hambench.tuning.plan import expand

SUITE = """
    name: exp
    description: export
    task: seg
    grid: {modules: [ham-nmf, none], backbones: [tiny-d8], data: [synthetic-context], seeds: 2}
    budget: {iters: 2, eval_interval: 2, batch: 2, crop: [32, 32]}
"""


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder as the driver leaves it, with what export reads: meta.json, each Tune trial's
    params.json and results.parquet (ham-nmf's seed 1 the better of its two)."""
    trials = expand(parse_suite(yaml.safe_load(textwrap.dedent(SUITE)), "exp.yaml"))
    run = tmp_path / "exp" / "20261205-000000"
    experiment = run / "tune-exp"
    for trial in trials:
        (experiment / trial.trial_id).mkdir(parents=True)
        params = {"trial": trial.model_dump(mode="json"), "data_roots": {}}
        (experiment / trial.trial_id / "params.json").write_text(json.dumps(params))
    (run / "meta.json").write_text(json.dumps({"experiment": str(experiment)}))
    miou = {("ham-nmf", 0): 70.0, ("ham-nmf", 1): 72.0, ("none", 0): 50.0, ("none", 1): 51.0}
    rows = [
        dict(
            trial_id=t.trial_id,
            task="seg",
            module=t.module,
            family=t.family,
            backbone=t.backbone,
            head=t.head,
            data=t.data,
            data_options="{}",
            seed=t.seed,
            options="{}",
            iters=2,
            status="ok",
            mIoU=miou[(t.module, t.seed)],
            aAcc=90.0,
        )
        for t in trials
    ]
    pd.DataFrame(rows).to_parquet(run / "results.parquet")
    return run


def test_the_best_configuration_is_a_modules_lowest_seed(run_dir: Path) -> None:
    assert best_trial(run_dir, "ham-nmf") == "seg-ham-nmf-tiny-d8-synthetic-context-s0"


def test_export_writes_the_trial_as_it_ran(run_dir: Path) -> None:
    trial_id, cfg = exported_config(run_dir, module="ham-nmf", overrides={"iters": 7})
    head = cfg["model"]["decode_head"]
    assert head["type"] == "ContextHead" and head["context"] == "ham-nmf"
    assert cfg["train_cfg"]["max_iters"] == 7 and cfg["param_scheduler"][0]["end"] == 7  # the schedule swapped
    assert cfg["train_dataloader"]["batch_size"] == 2 and cfg["model"]["data_preprocessor"]["size"] == (32, 32)
    assert cfg["randomness"] == {"seed": 0} and cfg["custom_imports"]["imports"] == ["hambench.models.heads"]
    assert cfg["val_evaluator"]["type"] == "IoUMetric" and cfg["custom_hooks"] == []
    types = [step["type"] for step in cfg["train_dataloader"]["dataset"]["pipeline"]]
    assert types == ["LoadImageFromFile", "LoadAnnotations", "RandomFlip", "PackSegInputs"]  # mmseg's own


def test_a_bad_field_or_trial_is_one_line(run_dir: Path, capsys) -> None:
    assert main(["export", str(run_dir), "--module", "ham-nmf", "--set", "itres=3"]) == 2
    assert "seg has no config field itres; fields: context," in capsys.readouterr().err
    assert main(["export", str(run_dir), "--trial", "nope"]) == 2
    assert "no trial 'nope'; its trials: seg-ham-nmf" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--module", "ocr"]) == 2
    assert "no finished trial of 'ocr'; modules: ham-nmf, none" in capsys.readouterr().err


def test_the_exported_config_trains_what_hambench_trains(run_dir: Path, tmp_path: Path, capsys) -> None:
    """Plain mmengine in a fresh process, then hambench's own loop in NCHW on the same data set:
    every evaluation's mIoU and aAcc equal (the Hamburger's random bases included)."""
    import os

    import torch

    from hambench.data import prepare_data
    from hambench.tasks.seg import SegConfig, train_seg

    out, work = tmp_path / "ham.py", tmp_path / "work"
    args = ["export", str(run_dir), "--module", "ham-nmf", "--out", str(out), "--set", f"work_dir={work}"]
    assert main([*args, "--set", "iters=12", "--set", "eval_interval=12"]) == 0
    assert "seg-ham-nmf-tiny-d8-synthetic-context-s0 -> " in capsys.readouterr().out
    code = (
        "import json; from mmengine.config import Config; from mmengine.runner import Runner; "
        f"runner = Runner.from_cfg(Config.fromfile({str(out)!r})); runner.train(); "
        "print(json.dumps({k: float(v) for k, v in runner.val().items()}))"
    )
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (work / "iter_12.pth").is_file()
    theirs = json.loads(done.stdout.strip().splitlines()[-1])

    threads = torch.get_num_threads()
    try:
        ours = train_seg(
            SegConfig(
                context="ham-nmf",
                data_root=str(prepare_data("synthetic-context", None, seed=0)),
                seed=0,
                iters=12,
                eval_interval=12,
                batch=2,
                crop=(32, 32),
                channels_last=False,
                threads=1,
                work_dir=str(tmp_path / "hambench"),
                log_interval=10**9,
            )
        )
    finally:
        torch.set_num_threads(threads)
    assert (round(theirs["mIoU"], 2), round(theirs["aAcc"], 2)) == (ours["mIoU"], ours["aAcc"])
