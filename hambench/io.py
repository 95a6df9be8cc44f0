"""Atomic file writes: results, reports and checkpoints are written to a temporary file in the
target's folder, then renamed over it (``os.replace``), so a reader or a resumed run never sees
half a file, and a writer that fails leaves the old file as it was.

``atomic_write(path, write)`` takes any writer of a path (``torch.save``, ``DataFrame.to_parquet``,
``save_image``); ``atomic_write_text`` / ``_bytes`` / ``_json`` cover the common cases.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone to read
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=fsync)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=fsync)


def atomic_write_json(path: str | Path, obj: Any, *, fsync: bool = False) -> Path:
    """``obj`` as indented JSON; values JSON cannot hold (paths, numpy scalars) are written as ``str``."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str), fsync=fsync)
