"""A user's mistake ends in one line on stderr and exit status 2, before anything runs: a suite
file, a tracker, a missing data root, a plugin that fails to import; from `hambench run suite`,
`hambench train seg|gan` and `hambench suites` alike. Sub-commands raise; ``hambench.cli.main``
alone prints the line and picks the status."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from hambench.cli.main import main


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hambench: error: "), captured.err
    assert "Traceback" not in captured.out + captured.err
    return lines[0].removeprefix("hambench: error: ")


def suite(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def bad_plugin(tmp_path: Path) -> str:
    path = tmp_path / "broken_plugin.py"
    path.write_text("import os\nraise RuntimeError('no licence server')\n")
    return str(path)


def test_run_suite_user_errors(tmp_path: Path, capsys, monkeypatch, bad_plugin: str) -> None:
    out = ["--out", str(tmp_path / "runs")]
    path = suite(tmp_path, "name: s\ngrid: {modules: [ham-nmff]}\n")
    msg = one_line_error(capsys, ["run", "suite", path, *out])
    assert msg.startswith(
        f"{path}: invalid suite: grid[0].modules[0]: unknown context module 'ham-nmff'; valid modules: "
    )
    ade = suite(tmp_path, "name: s\ngrid: {modules: [none], data: [ade20k]}\n")
    msg = one_line_error(capsys, ["run", "suite", ade, *out])
    assert msg.startswith("ade20k: no data root given (--data-root DIR); expected ")
    msg = one_line_error(capsys, ["run", "suite", ade, *out, "--data-root", str(tmp_path / "nowhere")])
    assert "ade20k" in msg and str(tmp_path / "nowhere") in msg
    msg = one_line_error(capsys, ["run", "suite", path, "--plugin", bad_plugin, *out])
    assert "broken_plugin.py" in msg and "RuntimeError: no licence server" in msg
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    ok = suite(tmp_path, "name: s\ngrid: {modules: [none]}\n")
    msg = one_line_error(capsys, ["run", "suite", ok, *out, "--tracker", "mlflow"])
    assert msg == "--tracker mlflow needs `pip install hambench[track]` (mlflow is not installed)"
    assert not (tmp_path / "runs").exists()  # all of it before anything was written


def test_train_user_errors(tmp_path: Path, capsys, bad_plugin: str) -> None:
    work = ["--work-dir", str(tmp_path / "w")]
    msg = one_line_error(capsys, ["train", "seg", "--context", "none", "--data", "ade20k", *work])
    assert msg.startswith("ade20k: no data root given (--data-root DIR); expected ")
    msg = one_line_error(
        capsys,
        ["train", "seg", "--context", "none", "--data", "voc-aug", "--data-root", str(tmp_path / "nowhere"), *work],
    )
    assert "voc-aug" in msg and str(tmp_path / "nowhere") in msg
    msg = one_line_error(
        capsys,
        [
            "train",
            "gan",
            "--context",
            "none",
            "--data",
            "image-folder",
            "--data-root",
            str(tmp_path / "nowhere"),
            *work,
        ],
    )
    assert str(tmp_path / "nowhere") in msg
    msg = one_line_error(capsys, ["train", "seg", "--context", "none", "--plugin", bad_plugin, *work])
    assert "broken_plugin.py" in msg and "RuntimeError: no licence server" in msg
    msg = one_line_error(capsys, ["train", "gan", "--context", "ham-nmff", "--plugin", bad_plugin, *work])
    assert "broken_plugin.py" in msg


def test_suites_user_errors(tmp_path: Path, capsys, monkeypatch) -> None:
    path = suite(tmp_path, "name: s\ngrid: {modules: [ham-nmff]}\n")
    msg = one_line_error(capsys, ["suites", "show", path])
    assert msg.startswith(f"{path}: invalid suite: grid[0].modules[0]: unknown context module 'ham-nmff'")
    msg = one_line_error(capsys, ["suites", "new", "bad name"])
    assert msg == "suite name 'bad name': use letters, digits, '.', '_' and '-' (starting with a letter or digit)"
    taken = tmp_path / "taken.yaml"
    taken.write_text("")
    msg = one_line_error(capsys, ["suites", "new", "taken", "--out", str(taken)])
    assert msg == f"{taken} exists; remove it or choose another --out"


def test_every_user_error_class_is_where_main_looks_for_it() -> None:
    """``USER_ERRORS`` names classes without importing them: a class that moved must move there too.
    Its module, or a package above it (imported whenever the module is), exports it."""
    from hambench.cli.main import USER_ERRORS

    for module, name in USER_ERRORS:
        cls = getattr(importlib.import_module(module), name)
        assert isinstance(cls, type) and issubclass(cls, Exception), (module, name)
        assert f"{cls.__module__}.".startswith(f"{module}."), (module, name, cls.__module__)


# Sub-commands that still print their own error line: each should raise instead (/tmp/plan/requests-C.md).
PRINTS_ITS_OWN_ERROR = {"cli/profile.py", "cli/report.py"}


def test_only_main_prints_a_user_error() -> None:
    package = Path(__file__).resolve().parents[1] / "hambench"
    printing = {
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if re.search(r"[\"']hambench( \w+)?: error: ", p.read_text())  # a string that starts with it
    }
    assert printing - PRINTS_ITS_OWN_ERROR == {"cli/main.py"}
