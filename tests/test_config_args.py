"""`hambench train <task>` has one sub-command per registered training task, its flags from the
task's config dataclass (hambench.cli.config_args); the one reading of ``KEY=VALUE``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hambench.cli.config_args import add_config_arguments, given_fields, parse_key_value, parse_options, parse_value
from hambench.cli.main import build_parser, main
from hambench.registry import scoped_registry
from hambench.tasks import Metric, Task, TrainCommand, register_task, scoped_tasks
from hambench.tasks.gan import GanConfig
from hambench.tasks.seg import SegConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ToyConfig:
    name: str = "a"  # what it is called
    steps: int = 3
    rate: float | None = None  # None: worked out
    crop: tuple[int, int] | None = None
    betas: tuple[float, float] = (0.0, 0.9)
    fast: bool = False  # skip the slow part
    opts: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    documented: int = field(default=1, metadata={"help": "from the metadata"})  # not this comment


def toy_parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy")
    add_config_arguments(parser, ToyConfig, **kwargs)
    return parser


def test_each_field_is_a_flag_of_its_type_and_unset_flags_keep_the_dataclass_default():
    args = toy_parser().parse_args(
        [
            "--steps",
            "5",
            "--crop",
            "96x64",
            "--betas",
            "0.5,0.99",
            "--fast",
            "--opts",
            "rank=8",
            "--opts",
            "grad=bptt",
            "--tags",
            "x",
            "--tags",
            "y",
        ]
    )
    given = given_fields(ToyConfig, args)
    assert given == {
        "steps": 5,
        "crop": (96, 64),
        "betas": (0.5, 0.99),
        "fast": True,
        "opts": {"rank": 8, "grad": "bptt"},
        "tags": ["x", "y"],
    }
    assert ToyConfig(**given).name == "a" and ToyConfig(**given).rate is None  # not given: the dataclass decides
    assert given_fields(ToyConfig, toy_parser().parse_args(["--no-fast", "--crop", "128"])) == {
        "fast": False,
        "crop": (128, 128),
    }


def test_help_comes_from_metadata_or_the_fields_comment():
    text = toy_parser().format_help()
    assert "what it is called (default: a)" in text and "skip the slow part (default: False)" in text
    assert "None: worked out" in text and "from the metadata" in text and "not this comment" not in text
    assert "--crop HxW" in text and "KEY=VALUE" in text


def test_a_bad_value_is_argparses_one_line_error_naming_the_flag(capsys):
    for argv, words in [
        (["--crop", "axb"], "argument --crop: size must be HxW"),
        (["--opts", "rank"], "argument --opts: expects KEY=VALUE"),
        (["--steps", "many"], "argument --steps: invalid int value: 'many'"),
    ]:
        with pytest.raises(SystemExit) as info:
            toy_parser().parse_args(argv)
        assert info.value.code == 2 and words in capsys.readouterr().err


def _leaf(*names: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in names:
        parser.format_help()  # a sub-command's parser is built when first used
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    parser.format_help()
    return parser


@pytest.mark.parametrize("task, config", [("seg", SegConfig), ("gan", GanConfig)])
def test_every_config_field_is_a_train_flag(task, config):
    dests = {a.dest for a in _leaf("train", task)._actions}
    assert {f.name for f in dataclasses.fields(config)} - dests == {"plugins"}  # the common --plugin


def test_the_flags_of_earlier_releases_still_parse():
    seg = _leaf("train", "seg").parse_args(
        [
            "--context",
            "ham-nmf",
            "--context-opt",
            "rank=8",
            "--crop",
            "32x48",
            "--aux-head",
            "--no-amp",
            "--eval-interval",
            "5",
        ]
    )
    assert given_fields(SegConfig, seg) == {
        "context": "ham-nmf",
        "options": {"rank": 8},
        "crop": (32, 48),
        "aux_head": True,
        "amp": False,
        "eval_interval": 5,
    }
    gan = _leaf("train", "gan").parse_args(["--context", "none", "--out-dir", "w", "--ema", "--res", "64"])
    assert given_fields(GanConfig, gan) == {"context": "none", "work_dir": "w", "ema": True, "res": 64}


def test_a_config_error_says_what_is_wrong(tmp_path, capsys):
    rc = main(["train", "gan", "--context", "none", "--eval-interval", "0", "--work-dir", str(tmp_path)])
    assert rc == 2
    assert capsys.readouterr().err == "hambench: error: eval_interval must be at least 1, got 0\n"


def test_key_value_is_one_reading_everywhere(capsys):
    assert parse_options(["rank=32", "inv_t=1.5", "rand_init=false", "grad=one-step", "eps=1e-3", "r=null"]) == {
        "rank": 32,
        "inv_t": 1.5,
        "rand_init": False,
        "grad": "one-step",
        "eps": 0.001,
        "r": None,
    }
    assert parse_value("[1, 2]") == [1, 2] and parse_value("[unclosed") == "[unclosed"
    with pytest.raises(argparse.ArgumentTypeError, match="expects KEY=VALUE, e.g. rank=32; got 'rank'"):
        parse_key_value("rank")
    for argv in (
        ["modules", "show", "ham-nmf", "--channels", "8", "--option", "rank"],
        ["profile", "ham-nmf", "--option", "rank"],
        ["train", "seg", "--context", "none", "--context-opt", "rank"],
    ):
        with pytest.raises(SystemExit):
            main(argv)
        assert "expects KEY=VALUE, e.g. rank=32; got 'rank'" in capsys.readouterr().err


def test_a_module_option_is_options_under_every_spelling():
    for task, config in (("seg", SegConfig), ("gan", GanConfig)):
        for flag in ("--options", "--option", "--context-opt", "--context-opts"):
            args = _leaf("train", task).parse_args(["--context", "ham-nmf", flag, "rank=8", flag, "eps=1e-3"])
            assert given_fields(config, args)["options"] == {"rank": 8, "eps": 0.001}


@dataclass
class ToyTrainConfig:
    context: str = "none"
    steps: int = 2  # optimisation steps
    work_dir: str = "work_dirs/toy"
    plugins: list[str] = field(default_factory=list)


def test_a_registered_training_task_is_a_train_sub_command(capsys):
    trained: list[ToyTrainConfig] = []

    def train(cfg: ToyTrainConfig, callback: Any = None) -> dict[str, Any]:
        trained.append(cfg)
        return {"score": float(cfg.steps)}

    toy = Task(
        name="toy",
        order=9,
        metrics=(Metric("score", "max"),),
        config=ToyTrainConfig,
        config_for=lambda trial, ctx: ToyTrainConfig(),
        train=train,
        model=lambda cfg, device: (None, None, None, None),
        command=TrainCommand(
            help="train a toy model",
            run_name=lambda cfg: f"{cfg.context}_{cfg.steps}",
            summary=lambda final: f"score {final['score']:.1f}",
        ),
    )
    with scoped_tasks():
        register_task(toy)
        with pytest.raises(SystemExit):
            main(["train", "--help"])
        assert "train a toy model" in capsys.readouterr().out
        with pytest.raises(SystemExit):
            main(["train", "toy", "--help"])
        assert "optimisation steps (default: 2)" in capsys.readouterr().out
        assert main(["train", "toy", "--steps", "3"]) == 0
        assert capsys.readouterr().out == "done: score 3.0\n"
        assert trained[-1] == ToyTrainConfig(steps=3, work_dir="work_dirs/toy/none_3")
    with pytest.raises(SystemExit):
        main(["train", "toy"])  # gone with its registration
    assert "invalid choice: 'toy'" in capsys.readouterr().err


PLUGIN_TASK = """
from dataclasses import dataclass, field

from hambench.tasks import Metric, Task, TrainCommand, register_task


@dataclass
class PluginConfig:
    context: str = "none"
    steps: int = 2  # optimisation steps of the plugin's task
    work_dir: str = "work_dirs/plugin-task"
    plugins: list = field(default_factory=list)


register_task(Task(
    name="plugin-task", order=9, metrics=(Metric("score", "max"),), config=PluginConfig,
    config_for=lambda trial, ctx: PluginConfig(), train=lambda cfg, callback=None: {"score": float(cfg.steps)},
    model=lambda cfg, device: (None, None, None, None), command=TrainCommand(help="a plugin's task"),
))
"""


def test_a_task_registered_by_a_plugin_file_is_a_train_sub_command(tmp_path, capsys):
    plugin = tmp_path / "plugin_task.py"
    plugin.write_text(PLUGIN_TASK)
    with scoped_tasks(), scoped_registry():
        with pytest.raises(SystemExit):
            main(["train", "plugin-task", "--help", "--plugin", str(plugin)])
        assert "optimisation steps of the plugin's task (default: 2)" in capsys.readouterr().out
        assert main(["--plugin", str(plugin), "train", "plugin-task", "--steps", "5"]) == 0
        assert "score" in capsys.readouterr().out


def _gan_budget() -> Any:
    spec = importlib.util.spec_from_file_location("gan_budget", ROOT / "benchmarks" / "gan_budget.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gan_budget_reads_set_as_the_command_line_does(capsys):
    parse_set = _gan_budget().parse_set
    parser = argparse.ArgumentParser(prog="gan_budget")
    values = parse_set(["lr_g=1e-4", "ema=true", "ema_decay=0.95"], parser)
    assert values == {"lr_g": 1e-4, "ema": True, "ema_decay": 0.95} and isinstance(values["lr_g"], float)
    for bad in ("lr_g", "no_such_field=1"):
        with pytest.raises(SystemExit):
            parse_set([bad], parser)
        assert "expected KEY=VALUE with KEY a GanConfig field" in capsys.readouterr().err
