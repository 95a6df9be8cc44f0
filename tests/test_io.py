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


def test_fault_line_names_the_fault_the_mount_point_and_the_file(tmp_path: Path) -> None:
    """A write that failed on a full, over-quota or read-only disk is found behind the exceptions
    that wrap it (a cause, a context, a Ray task error's ``cause``); any other failure is not."""
    import errno

    from hambench.io import DiskFault, fault_line, mount_point

    file = tmp_path / "runs" / "results.parquet"  # not there yet: its nearest existing folder decides
    mount = mount_point(tmp_path)
    assert os.path.ismount(mount) and str(tmp_path).startswith(str(mount))
    full = OSError(errno.ENOSPC, "No space left on device", str(file))
    assert fault_line(full) == f"no space left on {mount} writing {file}"
    # pyarrow's error has the errno but no file: the caller says what it was writing.
    arrow = OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert fault_line(arrow, writing=tmp_path / "x") == f"no space left on {mount} writing {tmp_path / 'x'}"
    assert fault_line(arrow) == f"no space left ({arrow})"
    quota = OSError(errno.EDQUOT, "Disk quota exceeded", str(file))
    assert fault_line(quota).startswith("disk quota exceeded on ")  # type: ignore[union-attr]
    readonly = OSError(errno.EROFS, "Read-only file system", str(file))
    assert fault_line(readonly) == f"read-only file system on {mount} writing {file}"

    class TaskError(Exception):  # Ray's RayTaskError keeps the worker's exception as ``cause``
        def __init__(self, cause: BaseException) -> None:
            super().__init__("task failed")
            self.cause = cause

    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("the checkpoint hook failed") from exc
    except RuntimeError as wrapped:
        assert fault_line(TaskError(wrapped)) == f"no space left on {mount} writing {file}"
    assert fault_line(TaskError(DiskFault("no space left on /mnt writing f"))) == "no space left on /mnt writing f"
    assert fault_line(OSError(errno.EACCES, "Permission denied", str(file))) is None
    assert fault_line(ValueError("bad option")) is None


def test_full_disk_counts_a_write_without_an_errno_only_when_space_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import collections

    from hambench import io
    from hambench.io import full_disk, fullest, mount_point

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(io.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    assert full_disk([tmp_path]) == f"no space left on {mount_point(tmp_path)} (4096 bytes free) writing in {tmp_path}"
    work, storage = tmp_path / "work", tmp_path / "storage"  # on two file systems, say
    monkeypatch.setattr(io, "mount_point", lambda path: Path(path))
    frees = {str(work): 10**9, str(storage): 0}
    monkeypatch.setattr(io.shutil, "disk_usage", lambda path: usage(10**9, 0, frees[str(path)]))
    assert fullest([work, storage]) == storage
    assert full_disk([work, storage]) == f"no space left on {storage} (0 bytes free) writing in {storage}"
    frees[str(storage)] = 10**9
    assert full_disk([work, storage]) is None


def test_a_full_disk_under_an_atomic_write_names_the_file_asked_for(tmp_path: Path) -> None:
    import errno

    def full(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(OSError) as raised:
        atomic_write(tmp_path / "report.html", full)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "report.html")
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone
