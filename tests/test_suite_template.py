"""``hambench suites new NAME``: a commented template of every suite key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hambench.cli.main import main
from hambench.cli.suites import suite_template
from hambench.suite import Grid, Suite, TuneSpec, load_suite
from hambench.tasks import get_task
from hambench.trial import Budget, ProfileSpec, Resources
from hambench.tuning.plan import expand


def uncomment(text: str) -> str:
    """Every commented-out key (``# key: ...`` at any depth) made a line of the file."""
    return re.sub(r"^(\s*)# (?=\s*[a-z_]+:)", r"\1", text, flags=re.M)


def test_template_is_yaml_with_the_two_required_keys() -> None:
    data = yaml.safe_load(suite_template("demo"))
    assert data == {"name": "demo", "grid": {"modules": ["ham-nmf", "nonlocal", "none"]}}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_template_as_written_is_a_seg_suite_with_the_tasks_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path / "demo.yaml", suite_template("demo")))
    assert suite.task == "seg" and suite.description == "" and suite.profile is None
    assert suite.budget == Budget(iters=1200, eval_interval=300, batch=4)
    assert suite.grid[0].backbones == ["tiny-d8"] and [d.name for d in suite.grid[0].data] == ["synthetic-context"]
    trials = expand(suite)
    assert [t.module for t in trials] == ["ham-nmf", "nonlocal", "none"]
    assert all(t.data == "synthetic-context" and t.budget == suite.budget for t in trials)


def test_template_with_every_line_uncommented_is_a_valid_suite(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(uncomment(suite_template("demo")))
    suite = load_suite(path)
    assert suite.name == "demo" and suite.task == "seg" and suite.profile is not None
    # three modules, a profiling trial each, and (tune: uncommented) eight search samples each
    assert len(expand(suite)) == 3 + 3 * 8
    data = yaml.safe_load(path.read_text())
    # Every key of the schema is in the template, and every optional one shows its default.
    assert set(data) == set(Suite.model_fields)
    assert set(data["grid"]) == set(Grid.model_fields)
    assert set(data["budget"]) == set(get_task("seg").budget.model_fields)  # a seg suite; gan's res is in a comment
    assert set(data["profile"]) == set(ProfileSpec.model_fields)
    assert ProfileSpec(**data["profile"]) == ProfileSpec() and Resources(**data["resources"]) == Resources()
    as_written = load_suite(write(tmp_path / "plain.yaml", suite_template("demo")))
    assert Budget(**data["budget"]) == as_written.budget  # the commented budget is seg's real default
    grid = Grid(**data["grid"])
    for key in ("options", "head", "task_options", "pretrained", "seeds"):
        assert getattr(grid, key) == Grid.model_fields[key].get_default(call_default_factory=True), key
    for key in ("metrics", "pareto", "references", "max_concurrent", "max_failures"):
        assert getattr(suite, key) == Suite.model_fields[key].get_default(call_default_factory=True), key
    assert set(data["tune"]) == set(TuneSpec.model_fields)
    for key in set(TuneSpec.model_fields) - {"space"}:  # space has no default: the template shows an example
        assert getattr(suite.tune, key) == TuneSpec.model_fields[key].get_default(call_default_factory=True), key


def test_suites_new_writes_the_file_and_refuses_to_overwrite(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["suites", "new", "my-suite"]) == 0
    assert yaml.safe_load((tmp_path / "my-suite.yaml").read_text())["name"] == "my-suite"
    before = (tmp_path / "my-suite.yaml").read_text()
    capsys.readouterr()
    assert main(["suites", "new", "my-suite"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == "hambench: error: my-suite.yaml exists; remove it or choose another --out"
    assert (tmp_path / "my-suite.yaml").read_text() == before
    assert main(["suites", "new", "other", "--out", str(tmp_path / "sub" / "x.yaml")]) == 0
    assert yaml.safe_load((tmp_path / "sub" / "x.yaml").read_text())["name"] == "other"


@pytest.mark.parametrize("name", ["bad name", ".hidden", "a/b"])
def test_a_name_a_suite_cannot_have_is_refused(name: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["suites", "new", name]) == 2
    assert f"suite name {name!r}" in capsys.readouterr().err and not list(tmp_path.iterdir())
