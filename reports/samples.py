"""The GAN trials' sample grids in the report: what each configuration's generator draws at the end
of training, beside its scores, embedded as base64 PNG so the page stays one self-contained file.

A GAN trial writes ``samples.png`` (the last evaluation's grid: one column per class, fixed noise)
into its work folder. Looked for, in this order: a copy at ``<run_dir>/samples/<trial_id>.png``;
the trial's Tune folder ``<experiment>/<trial_id>/work/`` (the experiment is
``tune-<suite>-<run_id>/`` inside the run directory unless meta.json's ``experiment`` names another
local path); the trial's newest Tune checkpoint ``<experiment>/<trial_id>/checkpoint_*/`` when the
checkpoint carries the file. Ray keeps a trial's working folder in its session directory, so the
work folder is often not in the run directory; a trial whose file is on no path reachable from
here shows no grid.
"""

from __future__ import annotations

import base64
import html
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hambench.schema import reported_rows
from hambench.stats import config_keys, format_mean_ci, group_configurations, options_label

SAMPLES_FILE = "samples.png"
COPIES_DIR = "samples"  # <run_dir>/samples/<trial_id>.png
TRIAL_DIR_CHARS = 120  # Tune's trial folder is the trial id cut to this length (the driver's trial_dirname_creator)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class SampleGrid:
    """One configuration's grid: the trial it comes from and the PNG's bytes."""

    task: str
    data: str
    module: str
    options: str
    seed: Any
    trial_id: str
    path: Path
    png: bytes

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, from the PNG header (IHDR)."""
        return struct.unpack(">II", self.png[16:24])

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _experiment_dirs(run_dir: Path, meta: dict[str, Any]) -> list[Path]:
    """Where the run's Tune experiment may be on this machine: meta.json's (when a local path),
    then every ``tune-*`` folder of the run directory."""
    dirs = []
    experiment = str(meta.get("experiment") or "")
    if experiment and "://" not in experiment:  # a URI (s3://, gs://) is not on this disk
        dirs.append(Path(experiment))
    dirs += sorted(p for p in run_dir.glob("tune-*") if p.is_dir())
    return list(dict.fromkeys(dirs))


def sample_file(run_dir: Path, trial_id: str, meta: dict[str, Any] | None = None) -> Path | None:
    """The trial's ``samples.png``, or None when it is on no path reachable from ``run_dir``."""
    run_dir = Path(run_dir)
    candidates = [run_dir / COPIES_DIR / f"{trial_id}.png"]
    for experiment in _experiment_dirs(run_dir, meta or {}):
        trial_dir = experiment / trial_id[:TRIAL_DIR_CHARS]
        candidates.append(trial_dir / "work" / SAMPLES_FILE)
        # A Tune checkpoint that carries the file (the newest first): it reaches the run directory
        # from whichever node ran the trial.
        candidates += sorted(trial_dir.glob(f"checkpoint_*/{SAMPLES_FILE}"), reverse=True)
    return next((p for p in candidates if p.is_file()), None)


def _read_png(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(PNG_SIGNATURE) and len(data) >= 24 else None


def find_sample_grids(results: pd.DataFrame, metas: list[dict[str, Any]]) -> list[SampleGrid]:
    """One grid per GAN configuration of ``results`` (successful trials): the lowest seed that has
    a readable ``samples.png``. Configurations are hambench.stats' (everything but the seed)."""
    if results.empty or "task" not in results:
        return []
    results = reported_rows(results)  # a tuning search's samples are not configurations of the report
    gan = results[(results["task"] == "gan") & (results["status"] == "ok")]
    if gan.empty:
        return []
    meta_of = {str(m.get("run_dir")): m for m in metas}
    grids = []
    for _, grp in group_configurations(gan, config_keys(gan)):
        grp = grp.sort_values("seed", kind="stable") if "seed" in grp else grp
        for _, row in grp.iterrows():
            run_dir = Path(str(row.get("run_dir", ".")))
            path = sample_file(run_dir, str(row["trial_id"]), meta_of.get(str(run_dir)))
            png = _read_png(path) if path is not None else None
            if png is not None:
                grids.append(SampleGrid(str(row["task"]), str(row["data"]), str(row["module"]), str(row["options"]),
                                        row.get("seed"), str(row["trial_id"]), path, png))
                break
    return grids


def _scores(summary: pd.DataFrame, grid: SampleGrid) -> str:
    """The configuration's metrics, as in the ranking: mean ± 95% CI over its seeds (n)."""
    if summary.empty:
        return ""
    mine = summary[(summary["task"].astype(str) == grid.task) & (summary["data"].astype(str) == grid.data)
                   & (summary["module"].astype(str) == grid.module) & (summary["options"].astype(str) == grid.options)
                   & (summary["metric"].fillna("") != "")]
    lines = []
    for _, r in mine.iterrows():
        n = 0 if pd.isna(r["n"]) else int(r["n"])
        lines.append(f"{html.escape(str(r['metric']))} {html.escape(format_mean_ci(r['mean'], r['ci_half'], n))} "
                     f"<span class='muted'>(n={n})</span>")
    return "<br>".join(lines)


def samples_section(results: pd.DataFrame, metas: list[dict[str, Any]], summary: pd.DataFrame) -> str:
    """The report's "Samples" section: per GAN configuration its grid beside its scores ('' when the
    runs have no GAN trial; a line saying so when no grid file is reachable)."""
    results = reported_rows(results)
    if results.empty or not (results["task"] == "gan").any():
        return ""
    grids = find_sample_grids(results, metas)
    out = ["<h2>Samples</h2>"]
    if not grids:
        out.append("<p class='muted'>No GAN trial's sample grid (samples.png) is reachable from these run "
                   "directories.</p>")
        return "\n".join(out)
    out.append("<p class='muted'>What each configuration's generator draws at the end of training: the last "
               "evaluation's fixed noise, one column per class, from the lowest seed that has a grid. "
               "Scores: mean ± 95% CI over the seeds, as in the ranking.</p><div class='grid3'>")
    for g in grids:
        w, h = g.size
        label = options_label(g.module, g.options)
        out.append(
            f"<div class='card'><h3>{html.escape(g.module)} <span class='muted'>{html.escape(label)} · "
            f"{html.escape(g.data)} · seed {html.escape(str(g.seed))}</span></h3>"
            f"<div style='display:flex;gap:12px;align-items:flex-start'>"
            f"<img class='samples' alt='samples of {html.escape(g.module)}' title='{html.escape(g.trial_id)}' "
            f"width='{2 * w}' height='{2 * h}' style='image-rendering: pixelated' src='{g.data_uri()}'>"
            f"<div>{_scores(summary, g)}</div></div></div>"
        )
    out.append("</div>")
    return "\n".join(out)
