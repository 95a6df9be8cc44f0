"""`pip install .` (not only editable) ships the zoo, the reports and the suites inside `hambench`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_maps_top_level_folders_into_the_hambench_namespace(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hambench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hambench/modules/__init__.py" in names and "hambench/modules/ham.py" in names
    assert "hambench/reports/__init__.py" in names
    # Every package of the source tree ships (a subpackage missing from pyproject's list works in an
    # editable install and breaks in a wheel).
    packages = {str(p.relative_to(REPO)) for p in (REPO / "hambench").rglob("__init__.py")}
    assert packages <= set(names), f"not in the wheel: {sorted(packages - set(names))}"
    assert any(n.startswith("hambench/suites/") and n.endswith(".yaml") for n in names)
    top_level = {n.split("/")[0] for n in names if not n.startswith("hambench-")}
    assert top_level == {"hambench"}, f"the wheel installs more than `hambench`: {sorted(top_level)}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "hambench = hambench.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
