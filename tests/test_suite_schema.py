"""Suite files: the schema's errors, the grid expansion, the shipped suites, ``hambench suites``."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import pytest
import yaml

from hambench.cli.main import main
from hambench.registry import get_spec
from hambench.reports import load_references
from hambench.suite import SuiteError, load_suite, shipped_suites, smoke
from hambench.trial import EVAL_FRACTION, Budget
from hambench.tuning import DEVICE_RESOURCE, trial_resources
from hambench.tuning.plan import expand

SHIPPED = [
    "quickstart",
    "synthetic-pareto",
    "context-probes",
    "module-cost",
    "ade20k-pareto",
    "voc-ablation",
    "gan-synthetic",
    "imagenet128-hamgan",
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text))
    return path


MINIMAL = """
    name: mini
    description: a test suite
    task: seg
    grid:
      modules: [ham-nmf, none]
      backbones: [tiny-d8]
      data: [synthetic-context]
      seeds: [0, 1]
    budget: {iters: 10, eval_interval: 5}
    profile: {shape: [1, 32, 16, 16]}
"""


def _grid_points(suite) -> tuple[set, set]:
    """What a suite should expand into, worked out from its grid here: the training points
    (module, options, backbone, data, data options, seed) and the profiled (module, options)."""
    train, profiled = set(), set()
    for grid in suite.grid:
        keys = list(grid.options)
        for entry in grid.modules:
            for values in itertools.product(*(grid.options[k] for k in keys)):
                for opts in entry.points():
                    point = (entry.name, json.dumps({**dict(zip(keys, values)), **opts}, sort_keys=True))
                    profiled.add(point)
                    data = [(d.name, json.dumps(o, sort_keys=True)) for d in grid.data for o in d.points()]
                    train |= {(*point, b, *d, s) for b in grid.backbones for d in data for s in grid.seeds}
    return train, profiled


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_suite_expands_into_its_grid_product(name: str) -> None:
    assert name in shipped_suites()
    suite = load_suite(name)
    trials = expand(suite)
    assert len({t.trial_id for t in trials}) == len(trials), f"{name}: duplicate trial ids"
    key = lambda t: (t.module, json.dumps(t.options, sort_keys=True))  # noqa: E731
    train, profiled = _grid_points(suite)
    trained = [
        (*key(t), t.backbone, t.data, json.dumps(t.data_options, sort_keys=True), t.seed)
        for t in trials
        if t.task != "profile"
    ]
    assert sorted(trained) == sorted(train if suite.task != "profile" else ())  # each point once
    profiles = [t for t in trials if t.task == "profile"]
    assert sorted(map(key, profiles)) == sorted(profiled if suite.profile else ())
    assert trials[: len(profiles)] == profiles  # profiling first


def test_quickstart_runs_on_a_two_core_cpu_and_compares_the_families() -> None:
    """What the README's first command promises: no GPU, two cores, every seed of every module,
    the Hamburgers and attention against the no-context baseline, on data that needs context."""
    suite = load_suite("quickstart")
    trials = expand(suite)
    assert all(t.resources.gpu == 0 for t in trials)
    assert suite.max_concurrent * suite.resources.cpu <= 2
    seg = [t for t in trials if t.task == "seg"]
    seeds = {m: sorted(t.seed for t in seg if t.module == m) for m in {t.module for t in seg}}
    assert len(set(map(tuple, seeds.values()))) == 1 and len(next(iter(seeds.values()))) >= 3
    assert {get_spec(m).family for m in seeds} >= {"hamburger", "attention", "none"}
    assert {t.data for t in seg} == {"synthetic-context"} and {t.backbone for t in seg} == {"tiny-d8"}


def test_ade20k_pareto_trains_like_the_published_tables() -> None:
    """Every zoo module with a published ResNet-101 ADE20K row is in the suite's r101-d8 grid, trained
    for the published schedule at the published crop (read from references.csv, not restated)."""
    refs = load_references()
    published = refs[
        (refs["task"] == "seg")
        & (refs["dataset"] == "ade20k")
        & (refs["backbone"] == "ResNet-101")
        & refs["module"].notna()
        & (refs["module"] != "")
    ]
    suite = load_suite("ade20k-pareto")
    seg = [t for t in expand(suite) if t.task == "seg"]
    assert set(published["module"]) <= {t.module for t in seg if t.backbone == "r101-d8"}
    schedule = published["iters"].mode()[0]
    crop = published["crop"].mode()[0]
    assert suite.budget.iters == schedule and "x".join(map(str, suite.budget.crop)) == crop
    assert "none" in {t.module for t in seg}  # the baseline every module is measured against


def test_voc_ablation_covers_the_paper_axes() -> None:
    seg = [t for t in expand(load_suite("voc-ablation")) if t.task == "seg"]
    assert {t.module for t in seg} == {"ham-nmf", "ham-cd", "ham-vq"}
    assert {t.options.get("grad") for t in seg} >= {"one-step", "bptt"}
    steps = [t.options for t in seg if "train_steps" in t.options]
    assert all(o["train_steps"] == o["eval_steps"] for o in steps) and len(steps) >= 5
    assert len({t.options.get("rank") for t in seg}) >= 4 and len({t.options.get("ham_channels") for t in seg}) >= 3


def test_grid_expansion_product_and_profile_trials(tmp_path: Path) -> None:
    trials = expand(load_suite(write(tmp_path, MINIMAL)))
    profile = [t for t in trials if t.task == "profile"]
    seg = [t for t in trials if t.task == "seg"]
    assert [t.module for t in profile] == ["ham-nmf", "none"]  # one per module, first
    assert trials[: len(profile)] == profile
    assert len(seg) == 2 * 2  # modules x seeds
    assert {(t.module, t.seed) for t in seg} == {("ham-nmf", 0), ("ham-nmf", 1), ("none", 0), ("none", 1)}


def test_options_product_and_explicit_points(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: opts
        description: options
        task: profile
        grid:
          modules:
            - name: ham-nmf
              options: {rank: [8, 16], grad: [one-step, bptt]}
            - name: ham-vq
              options: [{train_steps: 1, eval_steps: 1}, {train_steps: 3, eval_steps: 3}]
            - name: nonlocal
              options: {reduction: 4}
        profile: {shape: [1, 32, 16, 16]}
    """,
    )
    trials = expand(load_suite(path))
    nmf = [t.options for t in trials if t.module == "ham-nmf"]
    assert len(nmf) == 4 and {"rank": 16, "grad": "bptt"} in nmf
    assert [t.options for t in trials if t.module == "ham-vq"] == [
        {"train_steps": 1, "eval_steps": 1},
        {"train_steps": 3, "eval_steps": 3},
    ]
    assert [t.options for t in trials if t.module == "nonlocal"] == [{"reduction": 4}]  # scalar: one point


def test_only_keeps_named_modules(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, MINIMAL))
    assert {t.module for t in expand(suite, only=["none"])} == {"none"}
    with pytest.raises(SuiteError, match="--only danet: not in suite"):
        expand(suite, only=["danet"])


def test_smoke_shrinks_budgets_and_shapes() -> None:
    suite = load_suite("ade20k-pareto")
    small = smoke(suite)
    assert small.budget.iters <= 4 and small.budget.crop[0] <= 64 and small.resources.gpu == 0
    assert small.profile.device == "cpu" and small.profile.shape[2] <= 16
    trials = expand(suite, smoke_run=True)
    assert all(t.resources.gpu == 0 for t in trials)
    assert all(t.pretrained is None for t in trials)


def test_seeds_as_a_count_or_a_list(tmp_path: Path) -> None:
    five = load_suite(write(tmp_path, MINIMAL.replace("seeds: [0, 1]", "seeds: 5")))
    assert five.grid[0].seeds == [0, 1, 2, 3, 4]
    assert sorted({t.seed for t in expand(five) if t.task == "seg"}) == [0, 1, 2, 3, 4]
    picked = load_suite(write(tmp_path, MINIMAL.replace("seeds: [0, 1]", "seeds: [0, 3]")))
    assert {t.trial_id for t in expand(picked) if t.task == "seg"} >= {"seg-none-tiny-d8-synthetic-context-s3"}
    assert load_suite(write(tmp_path, MINIMAL.replace("      seeds: [0, 1]\n", ""))).grid[0].seeds == [0]  # default


@pytest.mark.parametrize(
    "seeds, why",
    [
        ("0", "got 0"),
        ("-2", "got -2"),
        ("[0, 0]", "got [0, 0] (0 twice)"),
        ("[1.5]", "(1.5 not allowed)"),
        ("[0, -1]", "(-1 not allowed)"),
        ("'3'", "got '3'"),
        ("true", "got True"),
        ("[]", "got []"),
        ("2.0", "got 2.0"),
    ],
)
def test_bad_seeds_are_one_line_naming_file_field_and_valid_values(tmp_path: Path, seeds: str, why: str) -> None:
    path = write(tmp_path, MINIMAL.replace("seeds: [0, 1]", f"seeds: {seeds}"))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{path}: invalid suite: grid[0].seeds: seeds must be a count (`seeds: 5` runs seeds 0..4)")
    assert "a list of distinct non-negative integers" in msg and why in msg


def test_smoke_keeps_two_seeds_at_most(tmp_path: Path) -> None:
    many = load_suite(write(tmp_path, MINIMAL.replace("seeds: [0, 1]", "seeds: [3, 1, 4]")))
    assert smoke(many).grid[0].seeds == [3, 1]  # the first two, as written
    assert sorted({t.seed for t in expand(many, smoke_run=True) if t.task == "seg"}) == [1, 3]
    one = load_suite(write(tmp_path, MINIMAL.replace("seeds: [0, 1]", "seeds: [7]")))
    assert smoke(one).grid[0].seeds == [7]


def test_profile_trials_hold_their_node_alone() -> None:
    trials = expand(load_suite("quickstart"))
    prof = trial_resources({"trial": next(t for t in trials if t.task == "profile").model_dump()})
    train = trial_resources({"trial": next(t for t in trials if t.task == "seg").model_dump()})
    assert prof[DEVICE_RESOURCE] == 1.0  # the whole unit: no other trial fits beside it
    assert 0 < train[DEVICE_RESOURCE] < 1 and prof[DEVICE_RESOURCE] + train[DEVICE_RESOURCE] > 1


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda d: d.pop("name"), "name: Field required"),
        (lambda d: d.update(task="train"), "task: Input should be 'profile', 'seg' or 'gan'"),
        (lambda d: d["grid"].update(seeds="zero"), "grid[0].seeds: seeds must be a count"),
        (lambda d: d.update(resources={"cpu": 1.5}), "above 1 a resource must be a whole number"),
        (lambda d: d.update(resources={"cpu": 0}), "resources.cpu: Input should be greater than 0"),
        (lambda d: d.update(budget={"iters": 0}), "budget.iters: Input should be greater than 0"),
        (lambda d: d.update(colour="red"), "colour: Extra inputs are not permitted"),
        (lambda d: d.update(budget={"res": 64}), "budget: res: not used by task seg"),
        (lambda d: d.update(profile={"shape": [1, 32, 16]}), "profile.shape"),
    ],
)
def test_malformed_file_names_file_field_and_expectation(tmp_path: Path, edit, expected: str) -> None:
    data = yaml.safe_load(textwrap.dedent(MINIMAL))
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_unknown_module_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[ham-nmf, none]", "[ham-nmf, hamburger-xl]"))
    with pytest.raises(SuiteError) as info:
        expand(load_suite(path), source=str(path))
    msg = str(info.value)
    assert "grid[0].modules[1]" in msg and "'hamburger-xl'" in msg
    assert "valid modules:" in msg and "ham-nmf" in msg and "danet" in msg


def test_a_two_line_suite_takes_its_tasks_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "name: two\ngrid: {modules: [ham-nmf, none]}\n"))
    assert suite.task == "seg" and suite.description == "" and suite.profile is None
    assert suite.budget == Budget(iters=1200, eval_interval=1200 // EVAL_FRACTION, batch=4)
    assert [(t.module, t.backbone, t.data, t.seed) for t in expand(suite)] == [
        ("ham-nmf", "tiny-d8", "synthetic-context", 0),
        ("none", "tiny-d8", "synthetic-context", 0),
    ]
    gan = load_suite(write(tmp_path, "name: g\ntask: gan\ngrid: {modules: [none]}\nbudget: {iters: 40}\n"))
    assert gan.budget == Budget(iters=40, eval_interval=10, batch=8)  # the task's batch, a quarter of iters
    assert [d.name for d in gan.grid[0].data] == ["synthetic-shapes"] and gan.grid[0].backbones == ["none"]
    given = load_suite(write(tmp_path, "name: e\ngrid: {modules: [none]}\nbudget: {iters: 40, eval_interval: 7}\n"))
    assert given.budget.eval_interval == 7


def test_every_bad_grid_value_is_reported_at_once_module_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        grid:
          modules: [ham-nmff, {name: ham-nmf, options: {rnk: [3]}}]
          backbones: [tiny-d8, resnet9]
          data: [ade]
    """,
    )
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    first, *rest = str(info.value).splitlines()
    assert first == f"{path}: invalid suite (5 errors)"
    assert (
        rest[0].strip().startswith("grid[0].modules[0]: unknown context module 'ham-nmff'; valid modules: ")
        and "ham-cd" in rest[0]
    )
    assert rest[1].strip().startswith("grid[0].modules[1].options.rnk: module 'ham-nmf' has no option(s) rnk")
    assert (
        rest[2].strip().startswith("grid[0].backbones[1]: unknown backbone 'resnet9'; valid: ") and "tiny-d8" in rest[2]
    )
    assert (
        rest[3].strip() == "grid[0].data[0]: unknown data set 'ade'; valid: "
        "synthetic-context, synthetic-recall, ade20k, voc-aug, pascal-context"
    )
    assert rest[4].strip() == "name: Field required"
    named = write(tmp_path, 'name: n\ngrid: {modules: [none], backbones: [timm:resnet18, "timm:"]}\n')
    with pytest.raises(SuiteError, match=r"invalid suite: grid\[0\]\.backbones\[1\]: unknown backbone 'timm:'"):
        expand(load_suite(named), source=str(named))  # a schema-valid suite: checked by expand, before Ray
    gan = write(tmp_path, "name: g\ntask: gan\ngrid: {modules: [none], data: [synthetic-context]}\n")
    with pytest.raises(
        SuiteError,
        match=r"grid\[0\]\.data\[0\]: unknown data set 'synthetic-context'; valid: synthetic-shapes, image-folder$",
    ):
        expand(load_suite(gan))


def test_unknown_option_lists_the_module_options(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[ham-nmf, none]", "[{name: ham-nmf, options: {steps: [3]}}]"))
    with pytest.raises(
        SuiteError,
        match=r"grid\[0\]\.modules\[0\]\.options\.steps: module 'ham-nmf' has no option\(s\) steps; "
        r"valid options: .*train_steps=6",
    ):
        expand(load_suite(path))


def test_unknown_suite_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="unknown suite 'nope'; shipped suites: .*quickstart"):
        load_suite("nope")
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SuiteError, match="broken.yaml: not valid YAML"):
        load_suite(bad)


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_suites_list_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suites", "list"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert name in out
    assert main(["suites", "show", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert "32 trials" in out and "profile-ham-nmf" in out and "node alone" in out and "1 CPU" in out
    assert main(["suites", "show", str(write(tmp_path, MINIMAL)), "--json"]) == 0
    trials = json.loads(capsys.readouterr().out)
    assert len(trials) == 6 and trials[0]["resources"] == {"cpu": 1.0, "gpu": 0.0}


def test_cli_show_a_suite_without_crop_or_res(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "name: two\ngrid: {modules: [ham-nmf, none]}\n")
    assert main(["suites", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 trials" in out and "1200 it, batch 4" in out and "crop" not in out
    assert main(["suites", "show", str(path), "--smoke"]) == 0
    assert "4 it, batch 2, crop 64x64" in capsys.readouterr().out


def test_cli_show_bad_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL.replace("task: seg", "task: dance"))
    assert main(["suites", "show", str(path)]) == 2
    assert f"{path}: invalid suite" in capsys.readouterr().err


def test_cli_show_voc_ablation_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suites", "show", "voc-ablation", "--smoke"]) == 0
    out = capsys.readouterr().out
    trials = expand(load_suite("voc-ablation"), smoke_run=True)
    assert f"{len(trials)} trials" in out and "voc-aug" in out and "(seg, smoke)" in out


def test_cli_parser_imports_no_heavy_backend(fresh_python) -> None:
    """`hambench --help` builds every sub-command's parser: Ray, mmseg and torchmetrics load only when a
    command runs."""
    code = (
        "import sys, hambench.cli.main as m; m.build_parser(); "
        "heavy = {'ray', 'mmseg', 'mmcv', 'mmengine', 'torchmetrics'}; "
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules} & heavy)))"
    )
    assert fresh_python(code).stdout.strip() == ""
