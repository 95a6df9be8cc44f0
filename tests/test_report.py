"""The HTML report and its figures, from a generated run directory (hambench.reports.fixture)."""

import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from hambench.cli.main import main
from hambench.registry import FAMILIES
from hambench.reports import build_figures, load_references, load_runs, pareto_mask, render_report
from hambench.reports.fixture import HOSTILE, HOSTILE_OPTION, make_fixture_run
from hambench.reports.points import aggregate_seeds
from hambench.reports.runs import RunDirError

COSTS = ["model_macs", "model_params", "model_latency_ms", "model_peak_mem_bytes"]  # whole-model fronts


class ExternalLoads(HTMLParser):
    """Collects the tags that would make a browser fetch something (script src, stylesheet, image)."""

    def __init__(self):
        super().__init__()
        self.found, self.scripts = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.scripts += tag == "script"
        if (tag in ("script", "img", "iframe") and attrs.get("src")) or (tag == "link" and attrs.get("href")):
            self.found.append((tag, attrs))


class TableCells(HTMLParser):
    """The text of every row of the tables in a piece of HTML: [[cell, ...], ...]."""

    def __init__(self):
        super().__init__()
        self.rows, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join(self.cell.split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_fixture_run(tmp_path_factory.mktemp("runs"), hostile=True)


@pytest.fixture(scope="module")
def report(run_dir):
    path = render_report([run_dir])
    return path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def figures(run_dir):
    runs = load_runs([run_dir])
    return build_figures(runs.results, runs.profile, load_references())


def test_report_goes_to_the_run_folder_as_one_self_contained_file(run_dir, report):
    path, text = report
    assert path == run_dir.resolve() / "report.html"
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".report")] == []  # no temp file left
    loads = ExternalLoads()
    loads.feed(text)
    assert loads.found == [] and loads.scripts >= 2  # Plotly inlined: nothing fetched over the network
    assert get_plotlyjs() in text  # the whole plotly.js library, inline


def section_figures(html: str) -> int:
    """The figures report sections draw themselves, beyond ``build_figures``'s: the probability of
    improvement's matrices and the aggregate's performance profiles (counted by their titles)."""
    return html.count("P(row better than column), ") + html.count("Performance profile: share of runs")


def test_every_figure_is_in_the_page(report, figures):
    _, text = report
    assert text.count("P(row better than column), ") == 2  # seg on synthetic-context, gan on synthetic-shapes
    assert text.count('class="plotly-graph-div"') == len(figures) + section_figures(text)


def test_figure_keys_cover_fronts_per_metric_and_data_and_scaling(figures):
    expected = {f"pareto/synthetic-context/mIoU/{c}" for c in COSTS}
    expected |= {f"pareto/synthetic-shapes/fid_surrogate/{c}" for c in COSTS}
    expected |= {"scaling/macs", "scaling/latency_ms", "scaling/peak_mem_bytes"}
    expected |= {"module/1x512x128x128/latency_ms/macs", "module/1x512x128x128/peak_mem_bytes/macs"}
    assert set(figures) == expected


def test_front_traces_follow_pareto_mask(run_dir, figures):
    points = aggregate_seeds(load_runs([run_dir]).results)
    seg = points[points["data"] == "synthetic-context"].reset_index(drop=True)
    mask = pareto_mask(seg[["model_macs", "mIoU"]].to_numpy(float), ["min", "max"])
    fig = figures["pareto/synthetic-context/mIoU/model_macs"]
    labelled = sorted(t for tr in fig.data if tr.text is not None and tr.mode == "markers+text" for t in tr.text)
    assert labelled == sorted(seg["module"][mask].map(lambda m: m.replace("<", "&lt;").replace(">", "&gt;")))
    (line,) = [tr for tr in fig.data if tr.name == "Pareto front"]
    assert line.line.shape == "hv" and list(line.x) == sorted(line.x) and len(line.x) == mask.sum()


def test_fid_front_is_minimised(figures):
    fig = figures["pareto/synthetic-shapes/fid_surrogate/model_macs"]
    (line,) = [tr for tr in fig.data if tr.name == "Pareto front"]
    assert list(line.y) == sorted(line.y, reverse=True)  # more cost buys a lower FID along the front
    assert "lower is better" in fig.layout.yaxis.title.text


def published(fig):
    return [tr for tr in fig.data if (tr.name or "").startswith("published")]


def test_no_published_point_on_a_synthetic_front(figures):
    # Published numbers are ADE20K / VOC / Context / ImageNet: none belongs beside synthetic data.
    fronts = {k: f for k, f in figures.items() if k.startswith("pareto/synthetic-")}
    assert len(fronts) == 8
    for key, fig in fronts.items():
        assert not published(fig), key
        (note,) = [a.text for a in fig.layout.annotations]
        assert note.startswith("no published points: references.csv has no"), note


def test_log_axis_when_the_range_calls_for_it(figures):
    assert figures["module/1x512x128x128/latency_ms/macs"].layout.xaxis.type == "log"  # 0.9 G .. 140 GMACs
    assert figures["pareto/synthetic-context/mIoU/model_macs"].layout.xaxis.type == "linear"  # 0.3 .. 1.3 GMACs
    assert figures["scaling/macs"].layout.xaxis.type == "log" and figures["scaling/macs"].layout.yaxis.type == "log"


def test_seeds_are_averaged_with_std_and_count(run_dir):
    results = load_runs([run_dir]).results
    points = aggregate_seeds(results)
    row = points[(points["module"] == "ham-nmf") & (points["backbone"] == "r18-d8") & (points["task"] == "seg")]
    raw = results[(results["module"] == "ham-nmf") & (results["backbone"] == "r18-d8") & (results["task"] == "seg")]
    assert len(row) == 1 and int(row["n_seeds"].iloc[0]) == 3
    assert row["mIoU"].iloc[0] == pytest.approx(raw["mIoU"].mean())
    assert row["mIoU_std"].iloc[0] == pytest.approx(raw["mIoU"].std(ddof=1))
    # The failed nonlocal trial (seed 3) is not averaged in.
    nl = points[(points["module"] == "nonlocal") & (points["backbone"] == "r18-d8") & (points["task"] == "seg")]
    assert int(nl["n_seeds"].iloc[0]) == 3


def test_scaling_legend_carries_the_fitted_exponent(figures, run_dir):
    names = {tr.name for tr in figures["scaling/macs"].data}
    assert "nonlocal  n^2.00 over 16²..128², R² 1.00" in names and "ham-nmf  n^1.00 over 16²..128², R² 1.00" in names
    # The report fits the rows itself (one rule for old and new runs): no stored exponent needed.
    runs = load_runs([run_dir])
    profile = runs.profile.drop(columns=[c for c in runs.profile if c.startswith("exponent_")])
    refit = build_figures(runs.results, profile, None)["scaling/macs"]
    assert "nonlocal  n^2.00 over 16²..128², R² 1.00" in {tr.name for tr in refit.data}


def test_hostile_names_render_as_text(report, figures):
    _, text = report
    assert HOSTILE not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the cost table shows it as text
    names = [tr.name for fig in figures.values() for tr in fig.data if tr.name]
    assert not [n for n in names if "<" in n]
    hover = " ".join(h for fig in figures.values() for tr in fig.data if tr.hovertext for h in tr.hovertext)
    assert HOSTILE_OPTION not in hover and "&lt;/script&gt;&lt;img" in hover


def test_cost_table_metadata_and_failed_trials(report):
    _, text = report
    assert re.search(r"<th>MACs fvcore</th>.*<th>MACs torchprofile</th>", text)
    assert "CPU (fixture)" in text and "versions.torch" in text and "node-0" in text
    assert "out of memory &lt;at&gt; the n x n attention map" in text  # failed trial, escaped
    assert 'table class="sortable"' in text


def test_several_runs_pool_their_seeds(tmp_path):
    a = make_fixture_run(tmp_path, run_id="a", seed=1)
    b = make_fixture_run(tmp_path, run_id="b", seed=2)
    points = aggregate_seeds(load_runs([a, b]).results)
    row = points[(points["module"] == "ham-cd") & (points["backbone"] == "r18-d8") & (points["task"] == "seg")]
    assert int(row["n_seeds"].iloc[0]) == 6 and row["runs"].iloc[0] == "a, b"
    assert render_report([a, b]) == (tmp_path / "fixture" / "report.html").resolve()


def test_bad_run_directories_are_named(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        render_report([tmp_path / "missing"])
    with pytest.raises(RunDirError, match="has no results.parquet"):
        render_report([tmp_path])
    pd.DataFrame({"trial_id": ["t"], "module": ["none"]}).to_parquet(tmp_path / "results.parquet")
    with pytest.raises(RunDirError, match=r"lacks the column\(s\) \['task', 'status'\]"):
        render_report([tmp_path])


def test_profile_only_run_renders_without_fronts(tmp_path, run_dir):
    results = pd.read_parquet(run_dir / "results.parquet")
    only = tmp_path / "suite" / "profile-only"
    only.mkdir(parents=True)
    results[["trial_id", "module", "family", "params", "macs_fvcore", "latency_ms"]].assign(
        task="profile", status="ok"
    ).to_parquet(only / "results.parquet")
    text = render_report([only]).read_text()
    assert "nothing to put on a Pareto front" in text and "<h2>Module cost</h2>" in text


def test_cli_report(tmp_path, run_dir, capsys):
    out = tmp_path / "r" / "mine.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_references_csv_is_sourced_and_in_stated_units():
    refs = load_references()
    assert refs["source"].notna().all() and refs["url"].str.startswith("https://").all()
    assert set(refs["family"]) <= set(FAMILIES) and set(refs["task"]) <= {"seg", "gan"}
    assert refs["mIoU"].dropna().between(20, 100).all()
    assert refs["params_M"].dropna().between(1, 1000).all()  # millions
    assert refs["gmacs"].dropna().between(1, 5000).all()  # 10^9 MACs at 512x512
    assert (refs["mIoU"].notna() | refs["fid"].notna()).all()
    # The ADE20K R101 comparison and the Light-Ham VAN rows of the published tables are there.
    r101 = refs[(refs["backbone"] == "ResNet-101") & (refs["dataset"] == "ade20k")]
    assert {"DANet", "OCRNet", "DNL", "HamNet"} <= set(r101["method"])
    assert set(refs.loc[refs["method"] == "Light-Ham", "backbone"]) >= {"VAN-Tiny", "VAN-Small", "VAN-Base"}
    assert {"voc-aug", "pascal-context"} <= set(refs["dataset"])


def test_options_are_canonical_json(run_dir):
    results = load_runs([run_dir]).results
    ham = results[results["module"] == "ham-nmf"]["options"].iloc[0]
    assert json.loads(ham) == {"r": 64, "steps": 6}


def test_accuracy_without_costs_renders_and_says_why(tmp_path, run_dir):
    # A seg run whose trials were not profiled: cost columns all None (object dtype), as Ray writes them.
    results = pd.read_parquet(run_dir / "results.parquet")
    results = results[results["task"] == "seg"].astype({"params": object, "macs_fvcore": object})
    for col in (
        "params",
        "macs_fvcore",
        "macs_torchprofile",
        "flops_torch",
        "latency_ms",
        "peak_mem_bytes",
        "model_params",
        "model_macs",
        "model_macs_fvcore",
        "model_latency_ms",
        "model_peak_mem_bytes",
    ):
        results[col] = None
    bare = tmp_path / "suite" / "no-costs"
    bare.mkdir(parents=True)
    results.to_parquet(bare / "results.parquet")
    runs = load_runs([bare])
    assert build_figures(runs.results, runs.profile, load_references()) == {}
    text = render_report([bare]).read_text()
    assert "has both an accuracy metric" in text and "No module was profiled" in text


FAMILY_OF = {"ham-nmf": "hamburger", "nonlocal": "attention", "none": "none"}


def bare_table(cost: str, rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    """A notebook's hand-made table: only the required columns, mIoU and one cost; a row per
    (module, mIoU, cost), seg on ade20k."""
    modules, miou, costs = (list(column) for column in zip(*rows))
    return pd.DataFrame(
        {
            "trial_id": [chr(ord("a") + i) for i in range(len(rows))],
            "task": "seg",
            "module": modules,
            "family": [FAMILY_OF[m] for m in modules],
            "backbone": "r50-d8",
            "data": "ade20k",
            "status": "ok",
            "mIoU": miou,
            cost: costs,
        }
    )


def test_build_figures_takes_a_bare_table():
    table = bare_table("model_params", [("ham-nmf", 44.0, 1e6), ("nonlocal", 43.0, 2e6), ("none", 40.0, 0.5e6)])
    figs = build_figures(table)
    assert list(figs) == ["pareto/ade20k/mIoU/model_params"]
    (line,) = [tr for tr in figs["pareto/ade20k/mIoU/model_params"].data if tr.name == "Pareto front"]
    assert list(line.x) == [0.5e6, 1e6]  # none and ham-nmf; nonlocal costs more for less


def test_zero_cost_on_a_log_axis_is_drawn_at_the_edge():
    table = bare_table("model_macs", [("none", 40.0, 0.0), ("ham-nmf", 44.0, 1e6), ("nonlocal", 45.0, 1e9)])
    fig = build_figures(table)["pareto/ade20k/mIoU/model_macs"]
    assert fig.layout.xaxis.type == "log" and "0 drawn at the left edge" in fig.layout.xaxis.title.text
    (line,) = [tr for tr in fig.data if tr.name == "Pareto front"]
    assert list(line.x) == pytest.approx([1e6 / 3, 1e6, 1e9])  # the identity stays on the front
    assert list(line.y) == [40.0, 44.0, 45.0]


# --- intervals and the ranking table -----------------------------------------------------------

T_975_DF2 = 4.302653  # Student t, 97.5th percentile, 2 degrees of freedom (t table)
SEEDS = {"a": [10.0, 11.0, 12.0], "b": [5.0, 6.0, 7.0], "c": [10.0, 12.0, 14.0], "one": [42.0]}


def seeded_table():
    """Three-seed configurations a (mean 11, s 1), b (6, s 1), c (12, s 2) and a one-seed one."""
    rows = [
        {
            "trial_id": f"{m}-{s}",
            "task": "seg",
            "module": m,
            "family": "other",
            "backbone": "r50-d8",
            "data": "ade20k",
            "seed": s,
            "status": "ok",
            "mIoU": v,
            "model_params": 1e6 * (i + 1),
        }
        for i, (m, values) in enumerate(SEEDS.items())
        for s, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


def point_traces(fig):
    return [
        tr
        for tr in fig.data
        if tr.hovertext is not None and tr.name != "Pareto front" and not (tr.name or "").startswith("published")
    ]


def test_error_bars_are_95_intervals_and_one_seed_has_none():
    fig = build_figures(seeded_table())["pareto/ade20k/mIoU/model_params"]
    bars = {}
    for tr in point_traces(fig):
        for i, y in enumerate(tr.y):
            bars[y] = None if tr.error_y.array is None else tr.error_y.array[i]
    assert bars[11.0] == pytest.approx(T_975_DF2 * 1 / np.sqrt(3), abs=1e-5)  # a: t * s / sqrt(n)
    assert bars[12.0] == pytest.approx(T_975_DF2 * 2 / np.sqrt(3), abs=1e-5)  # c
    assert bars[42.0] is None  # one seed: a trace without error bars, not a zero-length one
    (one,) = [tr for tr in point_traces(fig) if 42.0 in tr.y]
    assert one.error_y.visible is not True and one.error_y.array is None
    assert "1 seed" in one.hovertext[0] and "no interval" in one.hovertext[0]


def test_hover_gives_n_mean_interval_and_every_seed():
    fig = build_figures(seeded_table())["pareto/ade20k/mIoU/model_params"]
    (hover,) = [h for tr in point_traces(fig) for h, y in zip(tr.hovertext, tr.y) if y == 11.0]
    assert "mIoU: 11.0 ± 2.5" in hover and "95% CI 8.516 to 13.48" in hover and "n 3" in hover
    assert "mIoU by seed: 0: 10 · 1: 11 · 2: 12" in hover


def test_ranking_table_at_the_top_with_ties(tmp_path):
    run = tmp_path / "suite" / "seeded"
    run.mkdir(parents=True)
    seeded_table().to_parquet(run / "results.parquet")
    text = render_report([run]).read_text()
    start = text.index('<section id="ranking">')
    assert start < text.index("Accuracy vs cost")  # above the fronts
    section = text[start : text.index("</section>", start)]
    cells = TableCells()
    cells.feed(section)
    header, *rows = cells.rows
    assert header[:7] == ["module", "family", "options", "n", "mIoU (mean ± 95% CI)", "rank", "model params"]
    # Best first (rank, then mean), the one-seed configuration last and not ranked.
    assert [(r[0], r[3], r[5]) for r in rows] == [
        ("c", "3", "1 (tied)"),
        ("a", "3", "1 (tied)"),
        ("b", "3", "3"),
        ("one", "1", "-"),
    ]
    assert rows[1][4] == "11.0 ± 2.5 [8.516, 13.48]" and rows[3][4] == "42 (1 seed)"
    assert "model params" in section and "module params" not in section  # the whole model's cost where measured


def test_cli_report_prints_the_run_summary(tmp_path, capsys):
    run = tmp_path / "suite" / "seeded"
    run.mkdir(parents=True)
    seeded_table().to_parquet(run / "results.parquet")
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "seg on ade20k: mIoU (higher is better), mean ± 95% CI over seeds" in out
    assert re.search(r"│ a\s+│ defaults\s+│ 3 │\s+11\.0 ± 2\.5 │\s+1 \(tied\) │", out), out
