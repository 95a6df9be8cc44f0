"""Honest reports: like compared with like, whole-model costs, fits that mean something, figures as
files. The report's figures are read back trace by trace; nothing here asserts a timing."""

from __future__ import annotations

import math
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hambench.cli.main import main
from hambench.reports import build_figures, load_references, load_runs, render_report
from hambench.reports.fixture import make_fixture_run
from hambench.reports.runs import run_axes, run_references
from hambench.scaling import LATENCY_FLOOR_MS, fit_exponent, fit_sweep
from hambench.suite import SuiteError, load_suite

REFS_HEADER = (
    "source,url,task,dataset,split,method,backbone,module,family,iters,crop,eval,mIoU,fid,params_M,gmacs,notes\n"
)


def published(fig):
    return [tr for tr in fig.data if (tr.name or "").startswith("published")]


def note(fig) -> str:
    (text,) = [a.text for a in fig.layout.annotations]
    return text


def point_xs(fig) -> list[float]:
    """The x of every drawn result point (not the legend-only entries, the front line or published points)."""
    return sorted(
        x
        for tr in fig.data
        if tr.mode and "markers" in tr.mode and not (tr.name or "").startswith("published")
        for x in (() if tr.x is None else tr.x)
        if x is not None
    )


def figures_of(*run_dirs: Path) -> dict:
    """The figures exactly as render_report builds them (the runs' axes and references)."""
    runs = load_runs(list(run_dirs))
    refs, names = run_references(runs)
    axes, _ = run_axes(runs)
    return build_figures(runs.results, runs.profile, refs, axes=axes, references_name=", ".join(names))


@pytest.fixture(scope="module")
def ade20k(tmp_path_factory) -> Path:
    return make_fixture_run(tmp_path_factory.mktemp("ade"), run_id="ade", data="ade20k")


# --- like with like: published points --------------------------------------------------------------


def test_references_appear_on_a_front_of_the_same_data_set(ade20k):
    figs = figures_of(ade20k)
    refs = load_references()
    ade = refs[(refs["task"] == "seg") & (refs["dataset"] == "ade20k") & refs["mIoU"].notna()]
    (macs,) = published(figs["pareto/ade20k/mIoU/model_macs"])
    at_512 = ade[ade["gmacs"].notna() & (ade["crop"] == "512x512")]
    assert len(macs.x) == len(at_512) > 20 and np.allclose(sorted(macs.x), sorted(at_512["gmacs"] * 1e9))
    assert note(figs["pareto/ade20k/mIoU/model_macs"]).startswith(f"hollow diamonds: {len(at_512)} published")
    assert "1 at 520x520 left out" in note(figs["pareto/ade20k/mIoU/model_macs"])  # OCRNet's crop
    (params,) = published(figs["pareto/ade20k/mIoU/model_params"])
    assert np.allclose(sorted(params.x), sorted(ade["params_M"].dropna() * 1e6))  # params do not depend on size
    # Nothing published on latency or memory: no point, and the front says why.
    assert not published(figs["pareto/ade20k/mIoU/model_latency_ms"])
    assert "give no latency" in note(figs["pareto/ade20k/mIoU/model_latency_ms"])
    # The GAN fronts of the same run are on synthetic-shapes: nothing published there.
    assert not published(figs["pareto/synthetic-shapes/fid_surrogate/model_macs"])


def test_published_macs_only_at_the_same_input_size():
    table = pd.DataFrame(
        {
            "trial_id": ["a", "b"],
            "task": "seg",
            "module": ["ham-nmf", "none"],
            "family": ["hamburger", "none"],
            "backbone": "r101-d8",
            "data": "ade20k",
            "status": "ok",
            "mIoU": [30.0, 28.0],
            "model_macs": [2e9, 1.5e9],
            "model_params": [5e7, 4.8e7],
            "model_shape": "1x3x64x64",  # a smoke crop
        }
    )
    figs = build_figures(table, references=load_references())
    assert not published(figs["pareto/ade20k/mIoU/model_macs"])
    assert note(figs["pareto/ade20k/mIoU/model_macs"]) == (
        "published MACs not drawn: they are at 512x512, 520x520, these models at 64x64"
    )
    assert published(figs["pareto/ade20k/mIoU/model_params"])


def test_accuracy_fronts_are_whole_model_costs_and_the_module_has_its_own_view(ade20k):
    figs = figures_of(ade20k)
    results = load_runs([ade20k]).results
    ok = results[(results["task"] == "seg") & (results["status"] == "ok")]
    fig = figs["pareto/ade20k/mIoU/model_macs"]
    assert np.allclose(point_xs(fig), sorted(ok.groupby(["module", "backbone"])["model_macs"].mean()))
    assert "whole model at 1x3x512x512" in fig.layout.xaxis.title.text
    module = figs["module/1x512x128x128/latency_ms/macs"]
    assert "context module alone at 1x512x128x128" in module.layout.title.text
    prof = results[results["task"] == "profile"]
    drawn = sorted(x for tr in module.data if tr.mode == "markers+text" for x in tr.x)
    assert np.allclose(drawn, sorted(prof["macs_torchprofile"].where(prof["macs_torchprofile"] > 0, drawn[0])))
    assert not any(published(f) for k, f in figs.items() if k.startswith("module/"))


# --- pareto: and references: pick what is drawn -------------------------------------------------------


def test_pareto_axes_pick_the_figures(tmp_path):
    run = make_fixture_run(tmp_path, pareto=[{"x": "model_params", "y": "mIoU"}, {"x": "params", "y": "latency_ms"}])
    figs = figures_of(run)
    assert {k for k in figs if not k.startswith("scaling/")} == {
        "pareto/synthetic-context/mIoU/model_params",
        "module/1x512x128x128/latency_ms/params",
    }
    default = figures_of(make_fixture_run(tmp_path, run_id="default"))
    assert "pareto/synthetic-context/mIoU/model_macs" in default and "module/1x512x128x128/latency_ms/macs" in default


def test_an_old_suite_asking_accuracy_against_module_cost_is_refused_in_the_page(tmp_path):
    run = make_fixture_run(tmp_path, pareto=[{"x": "macs_fvcore", "y": "mIoU"}])
    axes, notes = run_axes(load_runs([run]))
    assert axes is None  # nothing drawable named: the defaults
    (line,) = notes
    assert "pareto {x: macs_fvcore, y: mIoU} not drawn" in line and "model_macs" in line
    assert "not drawn: x: &#x27;macs_fvcore&#x27; is the context module" in render_report([run]).read_text()


def test_a_suites_references_file_picks_the_points(tmp_path, ade20k):
    mine = tmp_path / "mine.csv"
    mine.write_text(
        "# one made-up row\n"
        + REFS_HEADER
        + "X,https://example.org,seg,ade20k,val,Mine,R-101,ham-nmf,hamburger,160000,512x512,ss,47.5,,50,800,\n"
    )
    run = make_fixture_run(tmp_path, data="ade20k", references=mine)
    assert (run / "mine.csv").is_file()  # copied into the run, as a run does
    figs = figures_of(run)
    (trace,) = published(figs["pareto/ade20k/mIoU/model_macs"])
    assert list(trace.x) == [800e9] and list(trace.y) == [47.5]
    assert "(mine.csv;" in note(figs["pareto/ade20k/mIoU/model_macs"])
    assert len(published(figures_of(ade20k)["pareto/ade20k/mIoU/model_macs"])[0].x) > 1  # the shipped file's


def write_suite(tmp_path: Path, extra: str, task: str = "seg", name: str = "bad") -> Path:
    path = tmp_path / f"{name}.yaml"
    budget = "budget: {iters: 2, eval_interval: 2, batch: 2, crop: [32, 32]}" if task != "profile" else ""
    path.write_text(
        textwrap.dedent(f"""\
        name: {name}
        description: a suite for the validation tests
        task: {task}
        grid: {{modules: [none], backbones: [tiny-d8], data: [synthetic-context]}}
        {budget}
        profile: {{shape: [1, 8, 8, 8], max_time: 0.2}}
        """)
        + textwrap.dedent(extra)
    )
    return path


@pytest.mark.parametrize(
    "extra, names",
    [
        ("pareto: [{x: macs_fvcore, y: mIoU}]\n", ["pareto", "macs_fvcore", "model_macs, model_params"]),
        (
            "pareto: [{x: model_macs, y: fid}]\n",
            ["pareto", "'fid' is not a metric of a seg suite", "mIoU, mIoU_auc, aAcc"],
        ),
        ("pareto: [{x: model_macs, y: latency}]\n", ["pareto", "neither a metric nor a cost", "latency_ms"]),
        ("references: nowhere.csv\n", ["references", "nowhere.csv", "no such file", "references.csv"]),
    ],
)
def test_bad_pareto_or_references_fail_before_ray_in_one_line(tmp_path, capsys, extra, names):
    import ray

    path = write_suite(tmp_path, extra)
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    assert all(n in message for n in names), message
    assert main(["run", "suite", str(path), "--out", str(tmp_path / "runs")]) == 2
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


def test_a_references_file_without_the_columns_is_refused(tmp_path):
    (tmp_path / "thin.csv").write_text("method,mIoU\nX,40\n")
    with pytest.raises(SuiteError, match=r"references: .*thin.csv lacks the column\(s\) source, url, task"):
        load_suite(write_suite(tmp_path, "references: thin.csv\n"))
    load_suite(write_suite(tmp_path, "references: references.csv\n", name="shipped"))  # a shipped name is found


# --- fits that mean something ---------------------------------------------------------------------------


def sweep_rows(run_dir: Path, module: str) -> list[dict]:
    prof = load_runs([run_dir]).profile
    rows = prof[(prof["module"] == module) & prof["sweep_size"].notna()]
    return [{**r, "n": r["sweep_size"] ** 2} for r in rows.to_dict("records")]


def test_the_fit_drops_points_under_the_timing_floor(ade20k):
    rows = sweep_rows(ade20k, "nonlocal")
    below = [r["sweep_size"] for r in rows if r["latency_ms"] < LATENCY_FLOOR_MS]
    assert below == [16, 32]  # 0.06 and 0.18 ms: the fixture's 0.05 ms call overhead dominates
    fit = fit_sweep(rows)["latency"]
    assert fit.used == (64**2, 96**2, 128**2) and (fit.n_min, fit.n_max) == (64**2, 128**2)
    assert 1.95 < fit.k < 2.0 and fit.r2 > 0.999
    everything = fit_exponent([r["n"] for r in rows], [r["latency_ms"] for r in rows])
    assert everything.k < 1.6  # what the overhead does to a fit through every size
    assert fit.label() == f"n^{fit.k:.2f} over 64²..128², R² {fit.r2:.2f}"
    # The scaling plot shows the same fit, and draws the dropped points hollow.
    (line,) = [tr for tr in figures_of(ade20k)["scaling/latency_ms"].data if tr.name.startswith("nonlocal")]
    assert line.name == f"nonlocal  {fit.label()}"
    assert list(line.marker.symbol) == ["circle-open", "circle-open", "circle", "circle", "circle"]


def test_too_few_usable_points_give_no_exponent(ade20k):
    fits = {m: fit_sweep(sweep_rows(ade20k, m))["latency"] for m in ("ham-nmf", "ham-cd", "danet")}
    assert all(f.k is None and f.r2 is None for f in fits.values())
    assert fits["ham-nmf"].reason == "0 of 5 sizes usable (3 needed); 5 point(s) under the 1 ms floor"
    assert fits["ham-cd"].reason.startswith("1 of 5 sizes usable")
    assert "1 point(s) with IQR/median >= 10%" in fits["danet"].reason  # the fixture's noisy 64x64 timing
    names = {tr.name for tr in figures_of(ade20k)["scaling/latency_ms"].data}
    assert "ham-nmf  no fit: 0 of 5 sizes usable (3 needed); 5 point(s) under the 1 ms floor" in names
    # MACs are exact counts: every size is used, two suffice (R^2 needs three).
    assert fit_sweep(sweep_rows(ade20k, "ham-nmf"))["macs"].k == pytest.approx(1.0)
    two = fit_exponent([16, 64], [1.0, 16.0])
    assert two.k == pytest.approx(2.0) and two.r2 is None


def test_fit_exponent_rules():
    ns = [100, 400, 900, 1600]
    assert fit_exponent(ns, [3 * n**2 for n in ns]).k == pytest.approx(2.0)
    # Spread at or above the limit drops a point; a missing or zero value is skipped.
    fit = fit_exponent(ns, [n for n in ns], spreads=[0.0, 0.5 * 400, 0.0, 0.0], max_spread=0.1, min_points=3)
    assert fit.used == (100, 900, 1600) and fit.k == pytest.approx(1.0)
    assert fit_exponent(ns, [None, 0, 5.0, math.nan]).k is None
    with pytest.raises(ValueError, match="two different sizes"):
        fit_exponent([4, 4], [1, 2])
    # A sum of terms reads in between over a range where both weigh; the range says which.
    mixed = [524288 * n + 256 * n**2 for n in [32**2, 64**2, 96**2, 128**2]]
    fit = fit_exponent([32**2, 64**2, 96**2, 128**2], mixed)
    assert 1.6 < fit.k < 1.9 and fit.label().endswith("over 32²..128², R² 1.00")


# --- whole-model cost, measured in the trials of a smoke run -----------------------------------------------


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> dict[str, Path]:
    from hambench.tuning import RunOptions, run_suite

    tmp = tmp_path_factory.mktemp("smoke")
    refs = tmp / "mine.csv"
    import hambench.reports

    shutil.copyfile(Path(hambench.reports.__file__).parent / "references.csv", refs)
    seg = write_suite(
        tmp, "references: mine.csv\npareto: [{x: model_macs, y: mIoU}, {x: macs, y: latency_ms}]\n", name="tiny-seg"
    )
    gan = tmp / "tiny-gan.yaml"
    gan.write_text(
        textwrap.dedent("""\
        name: tiny-gan
        description: a one-trial GAN suite for the whole-model cost test
        task: gan
        grid: {modules: [nonlocal], data: [synthetic-shapes]}
        budget: {iters: 2, eval_interval: 2, batch: 4, res: 32}
        """)
    )
    opts = dict(out=tmp / "runs", smoke=True, num_cpus=2, progress=False)
    return {name: run_suite(path, RunOptions(**opts)) for name, path in (("seg", seg), ("gan", gan))}


MODEL_COLUMNS = ["model_params", "model_macs", "model_latency_ms", "model_peak_mem_bytes"]


@pytest.mark.parametrize("task, shape", [("seg", "1x3x64x64"), ("gan", "1x3x32x32")])
def test_trials_record_their_whole_models_cost(smoke_runs, task, shape):
    results = pd.read_parquet(smoke_runs[task] / "results.parquet")
    trained = results[results["task"] == task]
    assert len(trained) >= 1 and trained["status"].eq("ok").all(), trained[["trial_id", "error"]].to_string()
    for col in MODEL_COLUMNS:
        assert (pd.to_numeric(trained[col]) > 0).all(), col
    assert trained["model_shape"].eq(shape).all() and trained["model_cost_error"].eq("").all()
    assert (trained["model_params"] > trained["params"].fillna(0)).all()  # more than the context module alone
    # The accuracy fronts' x values are those columns.
    metric = "mIoU" if task == "seg" else "fid_surrogate"
    data = trained["data"].iloc[0]
    fig = figures_of(smoke_runs[task])[f"pareto/{data}/{metric}/model_macs"]
    assert point_xs(fig) == sorted(trained["model_macs"].astype(float))
    assert not published(fig)


def test_a_run_keeps_the_references_it_was_made_with(smoke_runs):
    run = smoke_runs["seg"]
    assert (run / "mine.csv").is_file() and "references: mine.csv" in (run / "suite.yaml").read_text()
    assert set(figures_of(run)) >= {"pareto/synthetic-context/mIoU/model_macs", "module/1x8x16x16/latency_ms/macs"}


# --- figures as files --------------------------------------------------------------------------------------


def _export_missing() -> str | None:
    from hambench.reports.export import FigureExportError, check_export

    try:
        check_export("svg")
    except FigureExportError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("pdf", b"%PDF"), ("png", b"\x89PNG")])
def test_figures_are_written_beside_the_report(tmp_path, capsys, ade20k, fmt, magic):
    missing = _export_missing()
    if missing:
        pytest.skip(missing)
    out = tmp_path / "paper" / "report.html"
    assert main(["report", str(ade20k), "--out", str(out), "--figures", fmt]) == 0
    folder = tmp_path / "paper" / "report-figures"
    files = sorted(folder.glob(f"*.{fmt}"))
    assert len(files) == len(figures_of(ade20k)) and f"figures: {folder}" in capsys.readouterr().out
    assert all(f.read_bytes().startswith(magic) and f.stat().st_size > 1000 for f in files)
    assert (folder / f"pareto_ade20k_mIoU_model_macs.{fmt}").is_file()
    if fmt == "svg":  # the front's one-line note travels with the file
        assert "hollow diamonds:" in (folder / "pareto_ade20k_mIoU_model_macs.svg").read_text()


def test_figure_export_names_what_is_missing(tmp_path, capsys, monkeypatch, ade20k):
    import importlib.util
    import sys

    from hambench.reports.export import FigureExportError, check_export

    out = tmp_path / "r.html"
    monkeypatch.setitem(sys.modules, "kaleido", None)  # as if kaleido were not installed
    assert main(["report", str(ade20k), "--out", str(out), "--figures", "pdf"]) == 2
    assert capsys.readouterr().err.strip() == (
        "hambench: error: --figures pdf needs the kaleido package: pip install 'hambench[figures]'"
    )
    assert not out.exists()  # checked before any work
    monkeypatch.delitem(sys.modules, "kaleido")
    if importlib.util.find_spec("kaleido") is None:
        return  # the browser checks below come after kaleido's
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    assert main(["report", str(ade20k), "--out", str(out), "--figures", "svg"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"hambench: error: --figures svg: BROWSER_PATH={tmp_path / 'no-chrome'} is not an executable file"
    )
    monkeypatch.delenv("BROWSER_PATH")
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on PATH
    with pytest.raises(FigureExportError, match=r"^--figures svg needs Chrome or Chromium: none on PATH"):
        check_export("svg")
    assert not out.exists()
