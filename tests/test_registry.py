"""The registry, the contract check and the `hambench modules` commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import hambench
from hambench.check import CHECKS, check_module
from hambench.cli.main import main
from hambench.registry import DefaultRule, RegistryError, get_spec, register_module, resolve_options, scoped_registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "se_gate.py"


class _Shrinks(nn.Module):
    def __init__(self, channels: int):
        super().__init__()

    def forward(self, x):
        return x[:, :, :-1]


class _DeadParam(nn.Module):
    def __init__(self, channels: int, scale: float = 1.0):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.unused = nn.Conv2d(channels, channels, 1)  # never called: no gradient reaches it

    def forward(self, x):
        return self.conv(x)


class _NoisyEval(nn.Module):
    """Draws from a private generator, so a fixed global seed does not fix its output."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.gen = torch.Generator()

    def forward(self, x):
        return self.conv(x) + torch.randn(x.shape, generator=self.gen)


QUARTER = DefaultRule("channels // reduction, at least 1", lambda channels, reduction: max(1, channels // reduction))


class _WidthRule(nn.Module):
    """A bottleneck whose width defaults to a rule of the input width."""

    def __init__(self, channels: int, hidden: int | None = None, reduction: int = 4):
        super().__init__()
        self.hidden = hidden or channels // reduction
        self.down, self.up = nn.Conv2d(channels, self.hidden, 1), nn.Conv2d(self.hidden, channels, 1)

    def forward(self, x):
        return x + self.up(self.down(x))


class _Base(nn.Module):
    def __init__(self, channels: int, *, kind: str = "a", scale: float = 1.0, unused: int = 0):
        super().__init__()
        self.kind, self.scale, self.unused = kind, scale, unused
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return self.conv(x) * self.scale


class _VariantB(_Base):
    """_Base with kind 'b'."""


@pytest.fixture(scope="module", autouse=True)
def toy_modules():
    """The toy modules above, registered for this file's tests only (and every plugin they load)."""
    with scoped_registry():
        register_module("test-shrinks", family="other", complexity="O(n)")(_Shrinks)
        register_module("test-dead-param", family="other", complexity="O(n)")(_DeadParam)
        register_module("test-noisy-eval", family="other", complexity="O(n)")(_NoisyEval)
        register_module("test-width-rule", family="other", complexity="O(n)", rules={"hidden": QUARTER})(_WidthRule)
        register_module(
            "test-variant-b",
            family="other",
            complexity="O(n)",
            fixed=dict(kind="b"),
            hidden=("unused",),
            rules={"scale": DefaultRule("2.0 for kind b, else 1.0", lambda kind: 2.0 if kind == "b" else 1.0)},
        )(_VariantB)
        yield


def test_scoped_registry_forgets_what_was_registered_in_it():
    with scoped_registry():
        register_module("test-scoped-only", family="other")(_Shrinks)
        assert "test-scoped-only" in hambench.module_names()
    assert "test-scoped-only" not in hambench.module_names()
    assert "test-shrinks" in hambench.module_names() and "ham-nmf" in hambench.module_names()  # the rest stays


def _failed(results):
    return {r.check: r.reason for r in results if not r.ok}


def test_build_module_unknown_name_lists_valid_ones():
    with pytest.raises(RegistryError, match="unknown context module 'nope'.*test-shrinks"):
        hambench.build_module("nope", 8)


def test_build_module_unknown_option_lists_valid_options():
    with pytest.raises(RegistryError, match=r"no option\(s\) bogus; valid options: scale=1.0"):
        hambench.build_module("test-dead-param", 8, bogus=3)


class _NoChannels(nn.Module):
    def __init__(self, dim: int):
        super().__init__()


class _NoDefault(nn.Module):
    def __init__(self, channels: int, depth: int):
        super().__init__()


@pytest.mark.parametrize(
    "name, cls, why",
    [
        ("test-bad-signature", _NoChannels, "must take `channels`"),  # the constructor must take channels ...
        ("test-no-default", _NoDefault, "`depth` needs a default"),  # ... and default every option
        ("test-shrinks", _DeadParam, "taken by"),  # a name another class holds
    ],
)
def test_a_registration_that_cannot_stand_is_refused(name, cls, why):
    with pytest.raises(RegistryError, match=why):
        register_module(name, family="other")(cls)


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


def test_modules_list_json_has_the_fields(capsys):
    assert main(["modules", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name", "family", "complexity", "paper"} <= set(rows[0])
    assert "ham-nmf" in {r["name"] for r in rows}


def test_width_rule_resolves_at_build_time_and_the_user_wins():
    assert resolve_options("test-width-rule", 64) == {"hidden": 16, "reduction": 4}
    assert resolve_options("test-width-rule", 64, reduction=8) == {"hidden": 8, "reduction": 8}  # reads options
    assert resolve_options("test-width-rule", 64, hidden=5) == {"hidden": 5, "reduction": 4}
    assert resolve_options("test-width-rule", 2) == {"hidden": 1, "reduction": 4}
    assert hambench.build_module("test-width-rule", 64).hidden == 16
    assert get_spec("test-width-rule").as_dict()["options"]["hidden"] == "rule: channels // reduction, at least 1"
    with pytest.raises(RegistryError, match=r"no option\(s\) width; valid options: hidden=<channels // reduction"):
        resolve_options("test-width-rule", 64, width=3)
    with pytest.raises(RegistryError, match="channels must be a positive integer"):
        resolve_options("test-width-rule", 0)


def test_variant_is_its_base_with_fixed_settings():
    spec = get_spec("test-variant-b")
    assert spec.fixed == {"kind": "b"}
    assert spec.defaults == {"scale": 2.0}  # a rule reading only fixed settings is listed as its value
    block = hambench.build_module("test-variant-b", 8)
    assert (block.kind, block.scale, block.unused) == ("b", 2.0, 0)
    assert (_VariantB(8).kind, _VariantB(8, scale=3.0).scale) == ("b", 3.0)  # direct construction too
    with pytest.raises(TypeError, match="unused"):
        _VariantB(8, unused=1)
    with pytest.raises(RegistryError, match=r"no option\(s\) kind"):
        hambench.build_module("test-variant-b", 8, kind="a")


def test_bad_rules_and_variants_are_refused_at_registration():
    rule = DefaultRule("half", lambda channels: channels // 2)
    with pytest.raises(RegistryError, match="rule for 'depth', which is not one of its options"):
        register_module("test-bad-rule", family="other", rules={"depth": rule})(_DeadParam)
    with pytest.raises(RegistryError, match="reads width"):
        register_module("test-bad-rule", family="other", rules={"scale": DefaultRule("?", lambda width: width)})(
            _DeadParam
        )
    with pytest.raises(RegistryError, match="must be a DefaultRule"):
        register_module("test-bad-rule", family="other", rules={"scale": 2.0})(_DeadParam)
    with pytest.raises(RegistryError, match=r"remove .*_OwnInit.__init__ or drop fixed="):

        @register_module("test-bad-variant", family="other", fixed=dict(kind="b"))
        class _OwnInit(_Base):
            def __init__(self, channels: int):
                super().__init__(channels)

    with pytest.raises(RegistryError, match="flavour not option"):

        @register_module("test-bad-variant", family="other", fixed=dict(flavour="b"))
        class _Stranger(_Base):
            pass

    with pytest.raises(RegistryError, match="hidden= is for variants"):
        register_module("test-bad-variant", family="other", hidden=("unused",))


def test_modules_show_prints_the_resolved_options(capsys):
    assert main(["modules", "show", "ham-nmf", "--channels", "64", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "ham-nmf" and shown["channels"] == 64
    assert shown["options"] == resolve_options("ham-nmf", 64) and shown["options"]["rank"] == 8
    assert main(["modules", "show", "ham-cd", "--channels", "512", "--option", "rank=16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["options"]["rank"] == 16
    assert main(["modules", "show", "ham-nmf", "--channels", "512"]) == 0
    table = capsys.readouterr().out
    assert "rank" in table and "64" in table and "rule: the paper's d = 8r" in table and "fixed by the variant" in table


@pytest.mark.parametrize(
    "argv, words",
    [
        (["nope", "--channels", "64"], "unknown context module 'nope'"),
        (["ham-nmf", "--channels", "64", "--option", "beta=1"], r"no option\(s\) beta; valid options:"),
    ],
)
def test_modules_show_refuses_a_mistake_in_one_line(capsys, argv, words):
    assert main(["modules", "show", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hambench: error:")
    assert re.search(words, err), err


def test_modules_list_json_shows_rules_and_fixed_settings(capsys):
    assert main(["modules", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["ham-cd"]["options"]["rank"].startswith("rule: the paper's d = 8r")
    assert rows["ham-cd"]["options"]["inv_t"] == 100.0 and rows["ham-cd"]["fixed"] == {"version": "v2", "method": "cd"}
    assert rows["nonlocal"]["options"] == {"reduction": 2, "use_scale": True, "norm": True}


def test_plugin_file_registers_a_module_that_list_and_check_see(capsys):
    assert main(["modules", "list", "--json", "--plugin", str(EXAMPLE)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["se-gate"]["source"] == str(EXAMPLE)
    assert main(["modules", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS  se-gate") == len(CHECKS) + 1 and "0 failure(s)" in out  # the build, then each check


def test_check_command_exits_nonzero_with_the_reason(tmp_path, capsys):
    plugin = tmp_path / "broken.py"
    plugin.write_text(
        textwrap.dedent("""
        from torch import nn
        import hambench

        @hambench.register_module("test-broken-plugin", family="other")
        class Broken(nn.Module):
            def __init__(self, channels: int):
                super().__init__()
                self.proj = nn.Conv2d(channels, channels // 2, 1)

            def forward(self, x):
                return self.proj(x)
    """)
    )
    assert main(["modules", "check", str(plugin)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  test-broken-plugin" in out and "came back as (2, 16, 16, 16)" in out


def test_entry_point_registers_a_module(tmp_path, fresh_python):
    """A third-party distribution advertising `hambench.modules` is picked up with no change to hambench."""
    (tmp_path / "my_ctx.py").write_text(EXAMPLE.read_text().replace('"se-gate"', '"ep-gate"'))
    dist = tmp_path / "my_ctx-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-ctx\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hambench.modules]\nep-gate = my_ctx\n")
    code = "import json, hambench; print(json.dumps(hambench.get_spec('ep-gate').as_dict()))"
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = fresh_python(code, env)
    spec = json.loads(out.stdout.strip().splitlines()[-1])
    assert spec["source"] == "entry-point:my-ctx" and spec["family"] == "other"


def test_example_suite_benchmarks_the_plugin_like_the_built_ins():
    from hambench.suite import load_suite
    from hambench.tuning.plan import expand

    hambench.load_plugin(EXAMPLE)
    trials = expand(load_suite(REPO / "examples" / "my_suite.yaml"))
    assert sorted((t.task, t.module) for t in trials) == [
        ("profile", "none"),
        ("profile", "se-gate"),
        ("seg", "none"),
        ("seg", "se-gate"),
    ]


def test_a_plugin_gets_the_same_module_name_in_every_process() -> None:
    """Ray workers unpickle a plugin's classes by module name: it must not depend on the process
    (Python's hash() of a string is salted per process)."""
    plugin = Path(__file__).resolve().parent.parent / "examples" / "se_gate.py"
    code = (
        "import sys; from hambench.registry import load_plugin; load_plugin(sys.argv[1]); "
        "print([m for m in sys.modules if m.startswith('hambench_plugin_')])"
    )
    names = {
        subprocess.run(
            [sys.executable, "-c", code, str(plugin)], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(names) == 1 and "hambench_plugin_se_gate_" in names.pop()


# --- a plugin runs once per process ----------------------------------------------------------------

# A plugin's module: the identity, registered as NAME.
IDENTITY_MODULE = """
@hambench.register_module("NAME", family="other")
class Identity(nn.Module):
    def __init__(self, channels: int):
        super().__init__()

    def forward(self, x):
        return x
"""

COUNTING_PLUGIN = (
    """
from pathlib import Path
from torch import nn
import hambench

with open(Path(__file__).with_suffix(".count"), "a") as count:  # one mark per execution
    count.write("x")
"""
    + IDENTITY_MODULE
)


def test_a_plugin_loaded_again_unchanged_is_not_executed_again(tmp_path):
    """One run's path asks for the plugin files several times (CLI, driver, trial, training loop)."""
    plugin = tmp_path / "counted.py"
    plugin.write_text(COUNTING_PLUGIN.replace("NAME", "test-counted"))
    executions = lambda: len(plugin.with_suffix(".count").read_text())  # noqa: E731
    with scoped_registry():
        assert hambench.load_plugin(plugin) == ["test-counted"]
        assert hambench.registry.load_plugins([plugin, str(plugin)]) == ["test-counted", "test-counted"]
        assert executions() == 1
        plugin.write_text(COUNTING_PLUGIN.replace("NAME", "test-recounted"))  # changed: executed again
        assert hambench.load_plugin(plugin) == ["test-recounted"] and executions() == 2
        assert "test-counted" not in hambench.module_names()  # the old version's registration went
    assert "test-recounted" not in hambench.module_names()
    with scoped_registry():  # a scope undid the load: loading it again executes it again
        assert hambench.load_plugin(plugin) == ["test-recounted"] and executions() == 3


def test_the_registry_imports_nothing_of_hambench_above_it(fresh_python) -> None:
    """The registry is below the zoo: it imports ``hambench.modules`` by name, when first asked."""
    code = (
        "import sys, hambench.registry as r; before = sorted(m for m in sys.modules if m.startswith('hambench'));"
        " r.module_names(); print(before, 'hambench.modules' in sys.modules)"
    )
    assert fresh_python(code).stdout.strip() == "['hambench', 'hambench.registry'] True"


# --- plugins that fail ---------------------------------------------------------------------------

BROKEN_PLUGIN = (
    """
from torch import nn
import hambench
"""
    + IDENTITY_MODULE.replace("NAME", "test-half-registered")
    + """
settings = {"rank": 8}
rank = settings["heads"]  # KeyError
"""
)
BROKEN_LINE = BROKEN_PLUGIN.splitlines().index('rank = settings["heads"]  # KeyError') + 1


def test_a_plugin_that_raises_is_one_line_naming_file_exception_and_line(tmp_path):
    plugin = tmp_path / "broken_import.py"
    plugin.write_text(BROKEN_PLUGIN)
    with pytest.raises(RegistryError) as info:
        hambench.load_plugin(plugin)
    assert str(info.value) == f"plugin {plugin} failed to import: KeyError: 'heads' (line {BROKEN_LINE})"
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback
    assert "test-half-registered" not in hambench.module_names()  # what it registered went with it
    (tmp_path / "syntax.py").write_text("x = 1\ndef f(:\n")
    with pytest.raises(RegistryError, match=r"syntax.py failed to import: SyntaxError: .* \(line 2\)$"):
        hambench.registry.load_plugins([EXAMPLE, tmp_path / "syntax.py"])


def _commands_taking_plugin(parser, prefix=()):
    """(argv, parser) of every leaf sub-command that takes --plugin, its required arguments filled in."""
    import argparse

    parser.format_help()  # a lazily built parser adds its arguments (or its sub-commands) now
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands_taking_plugin(sub, (*prefix, name))
            return
    if not any("--plugin" in a.option_strings for a in parser._actions):
        return
    argv = list(prefix)
    for action in parser._actions:
        if action.required or (not action.option_strings and action.nargs in (None, 1)):
            value = str(action.choices[0] if action.choices else 1)  # "1": a string, a count or a width
            argv += [action.option_strings[0], value] if action.option_strings else [value]
    yield argv


def test_every_command_reports_a_broken_plugin_in_one_line(tmp_path, capsys):
    from hambench.cli.main import build_parser

    plugin = tmp_path / "broken_import.py"
    plugin.write_text(BROKEN_PLUGIN)
    commands = list(_commands_taking_plugin(build_parser()))
    assert {tuple(c[:2]) for c in commands} >= {("train", "seg"), ("train", "gan"), ("run", "suite"), ("profile", "1")}
    for argv in commands:
        assert main([*argv, "--plugin", str(plugin)]) == 2, argv
        captured = capsys.readouterr()
        assert (
            captured.err
            == f"hambench: error: plugin {plugin} failed to import: KeyError: 'heads' (line {BROKEN_LINE})\n"
        ), argv
