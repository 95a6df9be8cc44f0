"""`hambench train seg|gan` flags come from the config dataclasses (hambench.cli.config_args)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest

from hambench.cli.config_args import add_config_arguments, given_fields, parse_key_value, parse_options, parse_value
from hambench.cli.main import build_parser, main
from hambench.tasks.gan import GanConfig
from hambench.tasks.seg import SegConfig


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
    args = toy_parser().parse_args(["--steps", "5", "--crop", "96x64", "--betas", "0.5,0.99", "--fast",
                                    "--opts", "rank=8", "--opts", "grad=bptt", "--tags", "x", "--tags", "y"])
    given = given_fields(ToyConfig, args)
    assert given == {"steps": 5, "crop": (96, 64), "betas": (0.5, 0.99), "fast": True,
                     "opts": {"rank": 8, "grad": "bptt"}, "tags": ["x", "y"]}
    assert ToyConfig(**given).name == "a" and ToyConfig(**given).rate is None  # not given: the dataclass decides
    assert given_fields(ToyConfig, toy_parser().parse_args(["--no-fast", "--crop", "128"])) == {"fast": False, "crop": (128, 128)}


def test_help_comes_from_metadata_or_the_fields_comment():
    text = toy_parser().format_help()
    assert "what it is called (default: a)" in text and "skip the slow part (default: False)" in text
    assert "None: worked out" in text and "from the metadata" in text and "not this comment" not in text
    assert "--crop HxW" in text and "KEY=VALUE" in text


def test_a_bad_value_is_argparses_one_line_error_naming_the_flag(capsys):
    for argv, words in [(["--crop", "axb"], "argument --crop: size must be HxW"),
                        (["--opts", "rank"], "argument --opts: expects KEY=VALUE"),
                        (["--steps", "many"], "argument --steps: invalid int value: 'many'")]:
        with pytest.raises(SystemExit) as info:
            toy_parser().parse_args(argv)
        assert info.value.code == 2 and words in capsys.readouterr().err


def _leaf(*names: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in names:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    parser.format_help()  # built when first used
    return parser


@pytest.mark.parametrize("task, config", [("seg", SegConfig), ("gan", GanConfig)])
def test_every_config_field_is_a_train_flag(task, config):
    dests = {a.dest for a in _leaf("train", task)._actions}
    assert {f.name for f in dataclasses.fields(config)} - dests == {"plugins"}  # the common --plugin


def test_the_flags_of_earlier_releases_still_parse():
    seg = _leaf("train", "seg").parse_args(["--context", "ham-nmf", "--context-opt", "rank=8", "--crop", "32x48",
                                            "--aux-head", "--no-amp", "--eval-interval", "5"])
    assert given_fields(SegConfig, seg) == {"context": "ham-nmf", "context_opts": {"rank": 8}, "crop": (32, 48),
                                            "aux_head": True, "amp": False, "eval_interval": 5}
    gan = _leaf("train", "gan").parse_args(["--context", "none", "--out-dir", "w", "--ema", "--res", "64"])
    assert given_fields(GanConfig, gan) == {"context": "none", "work_dir": "w", "ema": True, "res": 64}


def test_a_config_error_says_what_is_wrong(tmp_path, capsys):
    rc = main(["train", "gan", "--context", "none", "--eval-interval", "0", "--work-dir", str(tmp_path)])
    assert rc == 2
    assert capsys.readouterr().err == "hambench: error: eval_interval must be at least 1, got 0\n"


def test_key_value_is_one_reading_everywhere(capsys):
    assert parse_options(["rank=32", "inv_t=1.5", "rand_init=false", "grad=one-step", "eps=1e-3", "r=null"]) == {
        "rank": 32, "inv_t": 1.5, "rand_init": False, "grad": "one-step", "eps": 0.001, "r": None}
    assert parse_value("[1, 2]") == [1, 2] and parse_value("[unclosed") == "[unclosed"
    with pytest.raises(argparse.ArgumentTypeError, match="expects KEY=VALUE, e.g. rank=32; got 'rank'"):
        parse_key_value("rank")
    for argv in (["modules", "show", "ham-nmf", "--channels", "8", "--option", "rank"],
                 ["profile", "ham-nmf", "--option", "rank"],
                 ["train", "seg", "--context", "none", "--context-opt", "rank"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "expects KEY=VALUE, e.g. rank=32; got 'rank'" in capsys.readouterr().err
