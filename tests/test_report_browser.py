"""The report in a real browser: Debian's headless Chromium loads it from disk with no network.

Checks that the scripts ran without console output, every figure rendered, the published
reference points are drawn (on the ADE20K run's fronts, the only ones of a published data set),
hostile names stayed text, and saves a screenshot
(``$HAMBENCH_SCREENSHOT`` if set, else under the test's tmp dir).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hambench.reports import build_figures, load_runs, render_report
from hambench.reports.fixture import make_fixture_run
from hambench.reports.runs import run_axes, run_references
from test_report import section_figures  # the sections' own figures

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"),
]
# Without the networking flags Chromium's background connections are refused by a closed network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
BUDGET_MS = 15000  # virtual time for Plotly to draw every figure


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        f"--virtual-time-budget={BUDGET_MS}",
        *args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    run_dirs = [make_fixture_run(tmp, hostile=True), make_fixture_run(tmp, run_id="ade20k", data="ade20k")]
    path = render_report(run_dirs)
    runs = load_runs(run_dirs)
    (references, names), (axes, _) = run_references(runs), run_axes(runs)
    figures = build_figures(runs.results, runs.profile, references, axes=axes, references_name=", ".join(names))
    proc = chromium(tmp, path.as_uri(), "--dump-dom")
    return tmp, path, len(figures) + section_figures(path.read_text()), proc, figures


def console_lines(proc: subprocess.CompletedProcess) -> list[str]:
    # Chromium logs every console message (errors and uncaught exceptions included) as CONSOLE.
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def test_console_check_sees_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); undefinedFunction();</script></body></html>")
    lines = console_lines(chromium(tmp_path, bad.as_uri(), "--dump-dom"))
    assert any("boom" in line for line in lines) and any("undefinedFunction" in line for line in lines)


def test_no_console_output(page):
    proc = page[3]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console_lines(proc) == []


def test_every_plot_rendered(page):
    _, _, n_figures, proc, _ = page
    dom = proc.stdout
    plots = re.findall(r'<div[^>]*class="[^"]*\bjs-plotly-plot\b', dom)
    assert len(plots) == n_figures
    assert dom.count('class="main-svg"') >= n_figures  # drawn, not just placeholders


def test_reference_points_drawn(page):
    _, _, _, proc, figures = page
    dom = proc.stdout
    legend = re.findall(r'class="legendtext"[^>]*data-unformatted="published \(references.csv\)"', dom)
    want = [len(tr.x) for fig in figures.values() for tr in fig.data if (tr.name or "").startswith("published")]
    assert len(legend) == len(want) > 0
    # Hollow diamonds (d="Mr,0L0,rL-r,0L0,-rZ") with no fill are the published points; the scaling
    # plots' hollow circles (sizes left out of a fit) are not.
    hollow = re.findall(r'<path class="point"[^>]*d="M[\d.]+,0L0,[\d.]+L-[\d.]+,0L0,-[\d.]+Z"[^>]*fill: none;', dom)
    assert len(hollow) == sum(want)


def test_hostile_names_stay_text(page):
    dom = page[3].stdout
    assert "<script>alert(1)</script>" not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "data-pwned" not in dom  # the option's onerror handler never ran


def test_screenshot(page):
    tmp, path = page[:2]
    shot = Path(os.environ.get("HAMBENCH_SCREENSHOT", tmp / "report.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    proc = chromium(tmp, path.as_uri(), f"--screenshot={shot}", "--window-size=1400,2400")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
