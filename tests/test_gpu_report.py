"""benchmarks/gpu_report.py: one line and exit 2 without CUDA; its CPU quick mode runs the whole path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_report.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run")
def test_without_cuda_it_says_so_in_one_line() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines() == [
        "gpu_report: no CUDA device here (torch.cuda.is_available() is False); --device cpu --quick checks the path"
    ]


@pytest.mark.slow
def test_the_cpu_quick_mode_writes_every_table(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    argv = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--modules", "ham-nmf", "nonlocal-sdpa", "none"]
    proc = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "## Modules" in text and "## Seg training" in text
    rows = [line for line in text.splitlines() if line.startswith("| nonlocal-sdpa |")]
    forced = {line.split(" | ")[2] for line in rows}
    assert forced == {"-", "math", "flash", "efficient", "cudnn"}  # every kernel tried, in fp32 and bf16
    assert len(rows) == 2 * 5
    math_fp32 = next(line for line in rows if line.split(" | ")[1:3] == ["fp32", "math"])
    assert " ms |" in math_fp32  # the math kernel runs on a CPU and is timed
    assert "| one process |" in text and "| Ray Train, 1 worker (gloo) |" in text
