"""Figures as files for a paper: ``hambench report RUN --figures svg|pdf|png``.

Plotly's static export through kaleido (the optional extra ``hambench[figures]``), which drives a
Chrome or Chromium that is already installed: Debian's ``chromium``, or the browser ``BROWSER_PATH``
names. Nothing is downloaded at run time: kaleido is handed the browser's path (so it never looks
for, or fetches, one of its own), plotly.py's own plotly.js, and no MathJax (the figures use none;
kaleido's default would load it from a CDN).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import plotly
import plotly.graph_objects as go

FORMATS = ("svg", "pdf", "png")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WIDTH = 900  # px of an exported figure (its height is the figure's own)


class FigureExportError(RuntimeError):
    """Figures cannot be exported here; the message (one line) names what is missing."""


def find_browser() -> str | None:
    """``BROWSER_PATH`` when set (kaleido's own variable), else the first Chrome/Chromium on PATH."""
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def check_export(fmt: str) -> str:
    """The browser to export ``fmt`` with; FigureExportError naming the first thing missing."""
    if fmt not in FORMATS:
        raise FigureExportError(f"--figures {fmt}: not a format; valid: {', '.join(FORMATS)}")
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise FigureExportError(f"--figures {fmt} needs the kaleido package: pip install 'hambench[figures]'") from None
    browser = find_browser()
    if browser is None:
        raise FigureExportError(
            f"--figures {fmt} needs Chrome or Chromium: none on PATH ({', '.join(BROWSERS)}); "
            "install Debian's chromium (apt-get install chromium) or set BROWSER_PATH"
        )
    if not (Path(browser).is_file() and os.access(browser, os.X_OK)):
        raise FigureExportError(f"--figures {fmt}: BROWSER_PATH={browser} is not an executable file")
    return browser


def figures_dir(report: Path) -> Path:
    """Where the figure files of ``report`` go: ``<report stem>-figures/`` beside it."""
    return Path(report).with_name(Path(report).stem + "-figures")


def file_name(key: str, fmt: str) -> str:
    """A figure key (``pareto/ade20k/mIoU/model_macs``) as a safe file name (``pareto_ade20k_mIoU_model_macs.svg``)."""
    stem = re.sub(r"[^A-Za-z0-9.=@-]+", "_", key).strip("_.") or "figure"
    return f"{stem}.{fmt}"


def export_figures(figures: dict[str, go.Figure], folder: Path, fmt: str, *, browser: str | None = None) -> list[Path]:
    """Write every figure to ``folder/<key>.<fmt>`` in one browser session; returns the paths."""
    import kaleido

    browser = browser or check_export(fmt)
    folder.mkdir(parents=True, exist_ok=True)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    specs, paths = [], []
    for key, fig in figures.items():
        path = folder / file_name(key, fmt)
        height = fig.layout.height or 450
        specs.append(dict(fig=fig.to_dict(), path=str(path), opts=dict(format=fmt, width=WIDTH, height=height)))
        paths.append(path)
    if not specs:
        return []
    try:
        kaleido.write_fig_from_object_sync(specs, kopts=dict(path=browser, mathjax=False, plotlyjs=str(plotly_js)))
    except Exception as exc:  # a browser that does not start, a render that times out: say which
        raise FigureExportError(
            f"--figures {fmt}: {browser} could not render the figures "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FigureExportError(
            f"--figures {fmt}: kaleido wrote no {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else "")
        )
    return paths
