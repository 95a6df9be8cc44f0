"""hambench.io: atomic writes keep the old file on failure, leave no temp file, and give normal permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from hambench.io import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_failing_writer_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "results.json", "old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half a fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_unserialisable_json_keeps_the_old_file(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "meta.json", {"a": 1})
    with pytest.raises(ValueError, match="Circular"):
        cycle: list = []
        cycle.append(cycle)
        atomic_write_json(path, cycle)
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


def test_files_get_the_permissions_of_a_plain_open(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        paths = [
            atomic_write_text(tmp_path / "report.html", "<html></html>"),
            atomic_write_bytes(tmp_path / "blob.bin", b"\x00\x01"),
            atomic_write_json(tmp_path / "sub" / "meta.json", {"path": tmp_path}),  # makes the folder
            atomic_write(tmp_path / "t.parquet", lambda tmp: pd.DataFrame({"x": [1]}).to_parquet(tmp)),
        ]
    finally:
        os.umask(old)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert json.loads((tmp_path / "sub" / "meta.json").read_text()) == {"path": str(tmp_path)}
    assert pd.read_parquet(tmp_path / "t.parquet")["x"].tolist() == [1]


def test_replaces_an_existing_file_with_fsync(tmp_path: Path) -> None:
    path = atomic_write_bytes(tmp_path / "ckpt.pth", b"first")
    atomic_write_bytes(path, b"second", fsync=True)
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth"]
