"""The registry, the contract check and the `hambench modules` commands."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import hambench
from hambench.check import check_module
from hambench.cli.main import main
from hambench.registry import RegistryError, register_module

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "se_gate.py"


@register_module("test-shrinks", family="other", complexity="O(n)")
class _Shrinks(nn.Module):
    def __init__(self, channels: int):
        super().__init__()

    def forward(self, x):
        return x[:, :, :-1]


@register_module("test-dead-param", family="other", complexity="O(n)")
class _DeadParam(nn.Module):
    def __init__(self, channels: int, scale: float = 1.0):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.unused = nn.Conv2d(channels, channels, 1)  # never called: no gradient reaches it

    def forward(self, x):
        return self.conv(x)


@register_module("test-noisy-eval", family="other", complexity="O(n)")
class _NoisyEval(nn.Module):
    """Draws from a private generator, so a fixed global seed does not fix its output."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.gen = torch.Generator()

    def forward(self, x):
        return self.conv(x) + torch.randn(x.shape, generator=self.gen)


def _failed(results):
    return {r.check: r.reason for r in results if not r.ok}


def test_build_module_unknown_name_lists_valid_ones():
    with pytest.raises(RegistryError, match="unknown context module 'nope'.*test-shrinks"):
        hambench.build_module("nope", 8)


def test_build_module_unknown_option_lists_valid_options():
    with pytest.raises(RegistryError, match=r"no option\(s\) bogus; valid options: scale=1.0"):
        hambench.build_module("test-dead-param", 8, bogus=3)


def test_constructor_must_take_channels_and_default_options():
    with pytest.raises(RegistryError, match="must take `channels`"):

        @register_module("test-bad-signature", family="other")
        class _Bad(nn.Module):
            def __init__(self, dim: int):
                super().__init__()

    with pytest.raises(RegistryError, match="`depth` needs a default"):

        @register_module("test-no-default", family="other")
        class _NoDefault(nn.Module):
            def __init__(self, channels: int, depth: int):
                super().__init__()


def test_name_clash_with_another_class_is_rejected():
    with pytest.raises(RegistryError, match="taken by"):

        @register_module("test-shrinks", family="other")
        class _Other(nn.Module):
            def __init__(self, channels: int):
                super().__init__()


def test_unknown_family_is_rejected():
    with pytest.raises(RegistryError, match="family must be one of"):
        register_module("test-family", family="transformers")


def test_check_rejects_shape_change_with_reason():
    failed = _failed(check_module("test-shrinks"))
    assert "came back as (2, 32, 15, 16)" in failed["shape (2,C,16,16)"]


def test_check_rejects_parameter_without_gradient():
    failed = _failed(check_module("test-dead-param"))
    assert set(failed) == {"backward: input and every parameter"}
    assert "unused.weight" in failed["backward: input and every parameter"]


def test_check_rejects_nondeterministic_eval():
    failed = _failed(check_module("test-noisy-eval"))
    assert set(failed) == {"deterministic in eval (fixed seed)"}


def test_every_registered_module_keeps_the_contract():
    builtin = [s.name for s in hambench.list_modules() if s.source == "hambench" and not s.name.startswith("test-")]
    assert builtin, "the zoo registered nothing"
    for name in builtin:
        assert not _failed(check_module(name)), name


def test_modules_list_json_has_the_fields(capsys):
    assert main(["modules", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name", "family", "complexity", "paper"} <= set(rows[0])
    assert "ham-nmf" in {r["name"] for r in rows}


def test_plugin_file_registers_a_module_that_list_and_check_see(capsys):
    assert main(["modules", "list", "--json", "--plugin", str(EXAMPLE)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["se-gate"]["source"] == str(EXAMPLE)
    assert main(["modules", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS  se-gate") == 9 and "0 failure(s)" in out


def test_check_command_exits_nonzero_with_the_reason(tmp_path, capsys):
    plugin = tmp_path / "broken.py"
    plugin.write_text(textwrap.dedent("""
        from torch import nn
        import hambench

        @hambench.register_module("test-broken-plugin", family="other")
        class Broken(nn.Module):
            def __init__(self, channels: int):
                super().__init__()
                self.proj = nn.Conv2d(channels, channels // 2, 1)

            def forward(self, x):
                return self.proj(x)
    """))
    assert main(["modules", "check", str(plugin)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  test-broken-plugin" in out and "came back as (2, 16, 16, 16)" in out


def test_entry_point_registers_a_module(tmp_path):
    """A third-party distribution advertising `hambench.modules` is picked up with no change to hambench."""
    (tmp_path / "my_ctx.py").write_text(EXAMPLE.read_text().replace('"se-gate"', '"ep-gate"'))
    dist = tmp_path / "my_ctx-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-ctx\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hambench.modules]\nep-gate = my_ctx\n")
    code = "import json, hambench; print(json.dumps(hambench.get_spec('ep-gate').as_dict()))"
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    spec = json.loads(out.stdout.strip().splitlines()[-1])
    assert spec["source"] == "entry-point:my-ctx" and spec["family"] == "other"


def test_example_suite_benchmarks_the_plugin_like_the_built_ins():
    from hambench.suite import expand, load_suite

    hambench.load_plugin(EXAMPLE)
    trials = expand(load_suite(REPO / "examples" / "my_suite.yaml"))
    assert sorted((t.task, t.module) for t in trials) == [
        ("profile", "none"), ("profile", "se-gate"), ("seg", "none"), ("seg", "se-gate")]
