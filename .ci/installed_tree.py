"""Build ``build/installed/``: the package as pip installs it, made of links to the source files.

pyproject.toml's ``package-dir`` installs ``modules/`` as ``hambench.modules``, ``reports/`` as
``hambench.reports`` and ``suites/`` as ``hambench.suites``. The editable install maps them with an
import hook that static tools never run: import-linter (grimp) and mypy read a package from the
file system, so in the source tree they see no ``hambench.modules`` nor ``hambench.reports`` and
the import cycles through them stay hidden. In the tree built here each installed name is a
folder (a link), so they see the package as Python imports it.

Usage: ``python .ci/installed_tree.py`` (prints the tree's path); the static checks then run from
inside it, see ``.ci/lint``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomli, which mypy (of the test extra) installs there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
TREE = REPO / "build" / "installed"


def package_dirs(pyproject: Path) -> dict[str, Path]:
    """Installed package name -> its source folder, from ``[tool.setuptools] package-dir``."""
    config = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    return {name: REPO / folder for name, folder in config.get("package-dir", {}).items() if name}


def build(tree: Path = TREE) -> Path:
    """(Re)build the link tree: each top-level package a real folder whose entries link to its
    source files and sub-folders, each mapped sub-package a link at its installed place."""
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    mapping = package_dirs(REPO / "pyproject.toml")
    for name in sorted(mapping, key=lambda n: n.count(".")):  # parents before their mapped children
        source, target = mapping[name], tree.joinpath(*name.split("."))
        if "." not in name:
            target.mkdir()
            for entry in source.iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
            continue
        if target.exists() or target.is_symlink():
            sys.exit(f"installed_tree: {name} is both {source} and a folder of its parent package")
        target.symlink_to(source, target_is_directory=True)
    return tree


if __name__ == "__main__":
    print(build())
