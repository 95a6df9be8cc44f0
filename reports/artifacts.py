"""The images a task's trials write, in the report: once per configuration, beside its scores,
embedded as base64 PNG so the page stays one self-contained file.

A task declares them (``hambench.tasks.Task.artifacts``: a file name, a title, what it shows; a GAN
declares its sample grid ``samples.png``); no file here names a task. A trial writes each into its
work folder. Looked for, in this order: a copy at ``<run_dir>/<stem>/<trial_id><suffix>`` (for
``samples.png``: ``<run_dir>/samples/<trial_id>.png``); the trial's Tune folder
``<experiment>/<trial_id>/work/`` (the experiment is ``tune-<suite>-<run_id>/`` inside the run
directory unless meta.json's ``experiment`` names another local path); the trial's newest Tune
checkpoint ``<experiment>/<trial_id>/checkpoint_*/`` when the checkpoint carries the file. Ray
keeps a trial's working folder in its session directory, so the work folder is often not in the
run directory; a trial whose file is on no path reachable from here shows no image.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hambench.reports.markup import e
from hambench.results import reported_rows
from hambench.stats import config_keys, format_mean_ci, group_configurations, options_label
from hambench.tasks import tasks

if TYPE_CHECKING:
    from hambench.tasks import Artifact

__all__ = ["PNG_SIGNATURE", "TrialImage", "artifacts_sections", "copy_path", "find_images", "image_file"]

TRIAL_DIR_CHARS = 120  # Tune's trial folder is the trial id cut to this length (the driver's trial_dirname_creator)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCALE = 2  # images are small (a grid of 32x32 samples): drawn at twice their size, pixels kept sharp


@dataclass(frozen=True)
class TrialImage:
    """One configuration's image of one artifact: the trial it comes from and the PNG's bytes."""

    artifact: Artifact
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


# --- where a trial's file is -----------------------------------------------------------------------


def copy_path(run_dir: Path, trial_id: str, file: str) -> Path:
    """Where a copy of a trial's ``file`` in the run directory is looked for first:
    ``<run_dir>/<stem>/<trial_id><suffix>``."""
    name = Path(file)
    return Path(run_dir) / name.stem / f"{trial_id}{name.suffix}"


def _experiment_dirs(run_dir: Path, meta: dict[str, Any]) -> list[Path]:
    """Where the run's Tune experiment may be on this machine: meta.json's (when a local path),
    then every ``tune-*`` folder of the run directory."""
    dirs = []
    experiment = str(meta.get("experiment") or "")
    if experiment and "://" not in experiment:  # a URI (s3://, gs://) is not on this disk
        dirs.append(Path(experiment))
    dirs += sorted(p for p in run_dir.glob("tune-*") if p.is_dir())
    return list(dict.fromkeys(dirs))


def image_file(run_dir: Path, trial_id: str, file: str, meta: dict[str, Any] | None = None) -> Path | None:
    """The trial's ``file``, or None when it is on no path reachable from ``run_dir``."""
    run_dir = Path(run_dir)
    candidates = [copy_path(run_dir, trial_id, file)]
    for experiment in _experiment_dirs(run_dir, meta or {}):
        trial_dir = experiment / trial_id[:TRIAL_DIR_CHARS]
        candidates.append(trial_dir / "work" / file)
        # A Tune checkpoint that carries the file (the newest first): it reaches the run directory
        # from whichever node ran the trial.
        candidates += sorted(trial_dir.glob(f"checkpoint_*/{file}"), reverse=True)
    return next((p for p in candidates if p.is_file()), None)


def _read_png(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(PNG_SIGNATURE) and len(data) >= 24 else None


# --- one image per configuration -------------------------------------------------------------------


def _declared() -> dict[str, tuple[Artifact, ...]]:
    """Task name -> the artifacts it declares (tasks that declare none left out)."""
    return {t.name: t.artifacts for t in tasks() if t.artifacts}


def _images_of(rows: pd.DataFrame, artifact: Artifact, meta_of: dict[str, dict[str, Any]]) -> list[TrialImage]:
    """One image per configuration of ``rows`` (one task's successful trials): the lowest seed
    that has a readable file. Configurations are hambench.stats' (everything but the seed)."""
    images = []
    for _, grp in group_configurations(rows, config_keys(rows)):
        grp = grp.sort_values("seed", kind="stable") if "seed" in grp else grp
        for _, row in grp.iterrows():
            run_dir = Path(str(row.get("run_dir", ".")))
            path = image_file(run_dir, str(row["trial_id"]), artifact.file, meta_of.get(str(run_dir)))
            png = _read_png(path) if path is not None else None
            if path is not None and png is not None:
                images.append(
                    TrialImage(
                        artifact,
                        str(row["task"]),
                        str(row["data"]),
                        str(row["module"]),
                        str(row["options"]),
                        row.get("seed"),
                        str(row["trial_id"]),
                        path,
                        png,
                    )
                )
                break
    return images


def find_images(results: pd.DataFrame, metas: list[dict[str, Any]]) -> list[TrialImage]:
    """Every declared artifact's image, one per configuration of ``results`` (successful trials of
    the tasks that declare it), in task and declaration order."""
    if results.empty or "task" not in results:
        return []
    results = reported_rows(results)  # a tuning search's images are not configurations of the report
    meta_of = {str(m.get("run_dir")): m for m in metas}
    images = []
    for task, artifacts in _declared().items():
        ok = results[(results["task"] == task) & (results["status"] == "ok")]
        if ok.empty:
            continue
        for artifact in artifacts:
            images += _images_of(ok, artifact, meta_of)
    return images


# --- the sections ----------------------------------------------------------------------------------


def _scores(summary: pd.DataFrame, image: TrialImage) -> str:
    """The configuration's metrics, as in the ranking: mean ± 95% CI over its seeds (n)."""
    if summary.empty:
        return ""
    mine = summary[
        (summary["task"].astype(str) == image.task)
        & (summary["data"].astype(str) == image.data)
        & (summary["module"].astype(str) == image.module)
        & (summary["options"].astype(str) == image.options)
        & (summary["metric"].fillna("") != "")
    ]
    lines = []
    for _, r in mine.iterrows():
        n = 0 if pd.isna(r["n"]) else int(r["n"])
        lines.append(
            f"{e(r['metric'])} {e(format_mean_ci(r['mean'], r['ci_half'], n))} <span class='muted'>(n={n})</span>"
        )
    return "<br>".join(lines)


def _card(image: TrialImage, summary: pd.DataFrame) -> str:
    w, h = image.size
    label = options_label(image.module, image.options)
    alt = f"{Path(image.artifact.file).stem} of {image.module}"
    return (
        f"<div class='card'><h3>{e(image.module)} <span class='muted'>{e(label)} · "
        f"{e(image.data)} · seed {e(str(image.seed))}</span></h3>"
        f"<div style='display:flex;gap:12px;align-items:flex-start'>"
        f"<img class='samples' alt='{e(alt)}' title='{e(image.trial_id)}' "
        f"width='{SCALE * w}' height='{SCALE * h}' style='image-rendering: pixelated' src='{image.data_uri()}'>"
        f"<div>{_scores(summary, image)}</div></div></div>"
    )


def artifact_section(task: str, artifact: Artifact, images: list[TrialImage], summary: pd.DataFrame) -> str:
    """One artifact's section: per configuration its image beside its scores, or a line saying
    that no trial's file is reachable."""
    out = [f"<h2>{e(artifact.title)}</h2>"]
    if not images:
        out.append(
            f"<p class='muted'>No {e(task)} trial's {e(artifact.file)} is reachable from these run directories.</p>"
        )
        return "\n".join(out)
    out.append(
        f"<p class='muted'>{e(artifact.description)}, from the lowest seed that has one. "
        "Scores: mean ± 95% CI over the seeds, as in the ranking.</p><div class='grid3'>"
    )
    out += [_card(image, summary) for image in images]
    out.append("</div>")
    return "\n".join(out)


def artifacts_sections(results: pd.DataFrame, metas: list[dict[str, Any]], summary: pd.DataFrame) -> str:
    """A section per artifact of every task the runs hold trials of ('' when none declares one)."""
    results = reported_rows(results)
    if results.empty or "task" not in results:
        return ""
    images = find_images(results, metas)
    sections = []
    for task, artifacts in _declared().items():
        if not (results["task"] == task).any():
            continue
        for artifact in artifacts:
            mine = [i for i in images if i.task == task and i.artifact == artifact]
            sections.append(artifact_section(task, artifact, mine, summary))
    return "\n".join(sections)
