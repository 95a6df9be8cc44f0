"""Atomic file writes: results, reports and checkpoints are written to a temporary file in the
target's folder, then renamed over it (``os.replace``), so a reader or a resumed run never sees
half a file, and a writer that fails leaves the old file as it was.

``atomic_write(path, write)`` takes any writer of a path (``torch.save``, ``DataFrame.to_parquet``,
``save_image``); ``atomic_write_text`` / ``_bytes`` / ``_json`` cover the common cases.

A write that fails because its disk is full, over quota or read-only is not a trial's failure:
a run stops on it in one line (``fault_line``: the fault, the file system, the file) and resumes
once the disk has room again; ``atomic_write`` names the file asked for, not its temporary file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    umask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(umask)
    return umask


def atomic_write(path: str | Path, write: Callable[[Path], object], *, fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file gets the permissions of a plain ``open(path, "w")`` (0644 under the usual umask);
    ``fsync=True`` also flushes it to disk before the rename (survives a power cut, not only a crash).
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone to read
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FAULTS:  # name the file the user asked for
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=fsync)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=fsync)


def atomic_write_json(path: str | Path, obj: Any, *, fsync: bool = False) -> Path:
    """``obj`` as indented JSON; values JSON cannot hold (paths, numpy scalars) are written as ``str``."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str), fsync=fsync)


# --- a full, over-quota or read-only disk -----------------------------------------------------

DISK_FAULTS = {  # errno -> how the one line names it
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}
LOW_SPACE = 1_000_000  # bytes: below this, a write that failed without an errno failed for want of space


class DiskFault(Exception):
    """A trial stopped because a disk it writes to is full, over quota or read-only; the message
    is the one line that says which disk and which file (``fault_line``)."""


def mount_point(path: str | Path) -> Path:
    """The mount point of the file system that holds ``path`` (or would: its nearest existing folder)."""
    p = Path(os.path.abspath(path))
    while not p.exists():
        p = p.parent
    while not os.path.ismount(p):
        p = p.parent
    return p


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and a Ray task error's cause, each once."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None)]


def fault_line(exc: BaseException, writing: str | Path | None = None) -> str | None:
    """The one line for a write that failed on a full, over-quota or read-only disk (``exc`` or
    any exception behind it), naming the file system's mount point and the file (the error's own,
    else ``writing``: what the caller was writing); None for any other failure."""
    for e in _causes(exc):
        if isinstance(e, DiskFault):
            return str(e)
        if isinstance(e, OSError) and e.errno in DISK_FAULTS:
            file = e.filename if isinstance(e.filename, str) else writing
            if file is None:
                return f"{DISK_FAULTS[e.errno]} ({e})"
            return f"{DISK_FAULTS[e.errno]} on {mount_point(file)} writing {file}"
    return None


def fullest(folders: list[Path]) -> Path:
    """Of the folders a failed write may have gone to, the one whose file system has the least
    space free: the likeliest place of a fault whose error names no file."""
    return min(folders, key=lambda f: shutil.disk_usage(mount_point(f)).free)


def full_disk(folders: list[Path]) -> str | None:
    """The one line for the first of ``folders`` whose file system has under LOW_SPACE bytes
    free: a write there that failed without an errno (``torch.save`` raises a RuntimeError)
    failed for want of space."""
    for folder in folders:
        anchor = mount_point(folder)
        free = shutil.disk_usage(anchor).free
        if free < LOW_SPACE:
            return f"no space left on {anchor} ({free} bytes free) writing in {folder}"
    return None
