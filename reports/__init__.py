"""Pareto-front reports: ``render_report`` writes one self-contained HTML file from run directories;
``build_figures`` returns the Plotly figures (for notebooks)."""

from hambench.reports.figures import build_figures
from hambench.reports.html import render_report
from hambench.reports.pareto import pareto_mask
from hambench.reports.runs import load_references, load_runs

__all__ = ["build_figures", "load_references", "load_runs", "pareto_mask", "render_report"]
