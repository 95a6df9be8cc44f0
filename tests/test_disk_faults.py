"""A disk that fills up under a running suite (a real tmpfs, filled by another writer mid-run):
the run stops in one line with exit status 2, the trials finished before keep their done
records, a resume without room is refused before Ray starts, and once the disk has room the
command the line gives finishes the run without running a finished trial again (same trial ids,
same ``started_at``, one build of each); a read-only disk is refused the same way. Slow (it
starts Ray twice) and root only (it mounts a tmpfs).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from test_fault_tolerance import _hambench, builds, probe_modules
from test_run_suite import profile_suite, write_plugin

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounts a tmpfs: needs root"),
]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 32 MB tmpfs: room for the run's floor (16 MB and 1 MB per profiling trial), not for ballast."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write zeros to ``disk`` until it is full; the ballast file to delete to free it again."""
    ballast = disk / "ballast"
    try:
        with open(ballast, "wb") as f:
            while True:
                f.write(bytes(1 << 20))
                f.flush()
    except OSError:
        pass
    return ballast


def test_a_disk_full_mid_run_stops_in_one_line_and_resume_finishes_it(tmp_path: Path, small_disk: Path) -> None:
    plugin = write_plugin(tmp_path)
    names = ["a", "b", "c", "d"]
    suite = profile_suite(tmp_path, probe_modules(tmp_path / "m", names, delay=0.02), name="disk")
    (tmp_path / "m").mkdir()
    run_dir = small_disk / "runs" / "disk" / "r"
    driver = _hambench(
        "run", "suite", str(suite), "--run-id", "r", "--plugin", str(plugin), "--out", str(small_disk / "runs"),
        "--num-cpus", "1", "--no-report",
    )  # fmt: skip
    deadline, done_dir = time.time() + 300, None
    while time.time() < deadline:
        done_dir = next(iter(run_dir.glob("tune-*/done")), None)
        if done_dir is not None and len(list(done_dir.glob("*.json"))) >= 2:
            break
        assert driver.poll() is None, driver.stdout.read()  # type: ignore[union-attr]
        time.sleep(0.1)
    ballast = fill(small_disk)
    out, _ = driver.communicate(timeout=300)
    assert done_dir is not None
    before = {p.stem: json.loads(p.read_text()) for p in done_dir.glob("*.json")}
    assert driver.returncode == 2, out
    assert "Traceback" not in out, out
    line = out.strip().splitlines()[-1]
    stop = re.fullmatch(
        rf"hambench: error: no space left on {re.escape(str(small_disk))} writing {re.escape(str(run_dir))}/\S+; "
        r"free space and run `(.+)`",
        line,
    )
    assert stop is not None, out
    command = shlex.split(stop.group(1))
    assert command == [
        "hambench", "run", "suite", str(suite), "--resume", str(run_dir), "--num-cpus", "1", "--plugin", str(plugin),
    ]  # fmt: skip
    assert 2 <= len(before) < len(names)

    # Read-only, then still full: the resume is refused before Ray starts, in one line, changing nothing.
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        refused = _hambench(*command[1:])
        out, _ = refused.communicate(timeout=120)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert refused.returncode == 2, out
    assert out.strip().splitlines()[-1] == (
        f"hambench: error: cannot write to {run_dir} (read-only or not yours); choose another --out"
    )

    refused = _hambench(*command[1:])
    out, _ = refused.communicate(timeout=120)
    assert refused.returncode == 2 and out.strip().splitlines()[-1].startswith(
        f"hambench: error: {small_disk / 'runs' / 'disk' / 'r'} has "
    ), out
    assert f"this run needs at least {16 + len(names) - len(before)} MB" in out

    ballast.unlink()
    resumed = _hambench(*command[1:])
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert out.splitlines()[0].startswith(f"resuming {run_dir} (the run folder given")
    results = pd.read_parquet(run_dir / "results.parquet").set_index("trial_id")
    assert len(results) == len(names) and results["status"].eq("ok").all()
    for trial_id, record in before.items():  # finished before the fault: kept, not run again
        assert results.loc[trial_id, "started_at"] == record["started_at"]
        marker = Path(json.loads(results.loc[trial_id, "options"])["marker"])
        assert builds(marker) == 1, f"{trial_id} finished before the disk filled but was built {builds(marker)} times"
