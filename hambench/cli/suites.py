"""``hambench suites list|show|new``: the shipped suites, what a suite expands to, a new suite file."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from hambench.cli import UserError, console
from hambench.suite import SuiteError, grid_points, load_suite, resolve_suite_path, shipped_suites, smoke
from hambench.trial import Budget, data_label


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("suites", help="list the shipped suites or show a suite's expanded trials")
    ssub = p.add_subparsers(dest="suites_command", required=True)

    ls = ssub.add_parser("list", parents=[common], help="the suites shipped with hambench")
    ls.set_defaults(func=run_list)

    show = ssub.add_parser("show", parents=[common], help="a suite's expanded trials and their resources")
    show.add_argument("suite", help="a shipped suite's name or a path to a suite .yaml file")
    show.add_argument("--smoke", action="store_true", help="show the --smoke version (tiny budgets)")
    show.add_argument("--only", nargs="+", metavar="MODULE", help="keep only these modules")
    show.add_argument("--json", action="store_true", help="print the trials as a JSON array")
    show.set_defaults(func=run_show)

    new = ssub.add_parser("new", parents=[common], help="write a commented suite template to NAME.yaml")
    new.add_argument("name", help="the suite's name (letters, digits, . _ -): also the file's, NAME.yaml")
    new.add_argument("--out", type=Path, metavar="PATH", help="write the template here instead of ./NAME.yaml")
    new.set_defaults(func=run_new)


def run_list(args: argparse.Namespace) -> int:
    from hambench.tuning.plan import expand  # imports Ray: only when a command needs it, not for --help

    table = Table(title="shipped suites (hambench suites show NAME)")
    for col in ("name", "task", "trials", "description"):
        table.add_column(col)
    for name, path in sorted(shipped_suites().items()):
        try:
            suite = load_suite(path)
            table.add_row(name, suite.task, str(len(expand(suite))), suite.description.strip())
        except SuiteError as exc:
            table.add_row(name, "?", "?", f"[red]{exc}[/red]")
    console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from hambench.tasks import get_task
    from hambench.tuning.plan import expand  # imports Ray: only when a command needs it, not for --help

    suite = load_suite(args.suite)  # a SuiteError is main's one-line user error
    trials = expand(suite, smoke_run=args.smoke, only=args.only, source=str(resolve_suite_path(args.suite)))
    if args.json:
        print(json.dumps([t.model_dump(mode="json") for t in trials], indent=2))
        return 0
    out = console()
    out.print(f"[bold]{suite.name}[/bold] ({suite.task}{', smoke' if args.smoke else ''}): {suite.description.strip()}")
    table = Table(title=f"{len(trials)} trials")
    for col in ("trial", "module", "options", "backbone", "data", "seed", "budget", "resources"):
        table.add_column(col)
    for t in trials:
        if t.profile is not None:
            budget = f"shape {'x'.join(map(str, t.profile.shape))}" + (
                f", sweep {t.profile.sweep}" if t.profile.sweep else ""
            )
        else:
            assert t.budget is not None
            budget = f"{t.budget.iters} it, batch {t.budget.batch}" + _own_fields(t.budget)
        res = f"{t.resources.cpu:g} CPU" + (f", {t.resources.gpu:g} GPU" if t.resources.gpu else "")
        res += ", node alone" if get_task(t.task).alone_on_device else ""
        table.add_row(
            t.trial_id,
            t.module,
            yaml.safe_dump(t.options, default_flow_style=True).strip() if t.options else "",
            t.backbone,
            data_label(t.data, t.data_options),
            str(t.seed),
            budget,
            res,
        )
    out.print(table)
    if suite.tune is not None:  # the retrain's trials follow from what the search chooses
        searched = smoke(suite) if args.smoke else suite
        arms = 2 if searched.tune.compare_defaults else 1  # type: ignore[union-attr]
        runs = sum(len(p.seeds) for p in grid_points(searched, only=args.only)) * arms
        after = f"at most {runs} retrain trials"  # fewer where no sample of a module ran the whole budget
        out.print(
            f"search: {searched.tune.samples} samples per module, scored on val ({searched.tune.scheduler}); "  # type: ignore[union-attr]
            f"then {after} (the chosen configuration{' and the defaults' if arms == 2 else ''} x the grid's seeds), "
            f"scored on test"
        )
    if suite.pareto:
        out.print("pareto axes: " + "; ".join(f"{a.y} vs {a.x}" for a in suite.pareto))
    return 0


def _own_fields(budget: Budget) -> str:
    """The budget fields its task declares besides the common ones (seg's crop), where the suite
    sets them (unset: the task's or the data set's default)."""

    def text(value: Any) -> str:
        return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    own = budget.model_extra or {}
    return "".join(f", {name} {text(value)}" for name, value in own.items() if value is not None)


# --- suites new --------------------------------------------------------------------------------

# Every key of a suite file: the two required ones set, each optional one commented out with its
# default and what it means (hambench.suite holds the schema). Uncommenting a line keeps the file
# valid YAML and a valid suite. "@NAME@" is replaced by the suite's name.
TEMPLATE = """\
# A hambench suite. Only `name` and `grid.modules` are required; every other key is shown below,
# commented out, with its default: uncomment a line to change it. `hambench suites show FILE`
# lists the trials the file expands to, `hambench run suite FILE --smoke` checks the whole path
# in minutes, `hambench run suite FILE` runs it. The manual: docs/suites.md.

name: @NAME@                       # letters, digits, . _ -; the run directory is <out>/<name>/<run-id>/
# description: ""                 # what the suite measures, shown by `hambench suites list`
# task: seg                       # seg (segmentation) | gan (image generation) | profile (module cost only)
grid:                             # one grid, or a list of grids (their union)
  modules: [ham-nmf, nonlocal, none]  # `hambench modules list`; with options: {name: ham-cd, options: {rank: [32, 64]}}
  # backbones: [tiny-d8]          # seg: the segmentor's backbones (tiny-d8 trains on a CPU)
  # data: [synthetic-context]     # seg: synthetic-context | synthetic-recall (generated) | ade20k | voc-aug |
  #                               # pascal-context (real sets: --data-root); gan: synthetic-shapes | image-folder;
  #                               # a generated set's options: {name: synthetic-recall, options: {keys: [1, 2, 3]}}
  # seeds: 1                      # a count (3: seeds 0, 1, 2) or a list of distinct seeds, [0, 3]
  # options: {}                   # options applied to every module of this grid, e.g. {rank: [32, 64]}
  # head: context                 # seg decode head: context | single | light
  # task_options: {}              # more fields of the task's config, e.g. {aux_head: false}
  # pretrained: null              # a local backbone checkpoint; nothing is downloaded
# budget:                         # what each training trial runs; these are seg's defaults (gan: iters 1800, batch 8)
#   iters: 1200                   # training iterations
#   eval_interval: 300            # evaluate and checkpoint every N iterations, and at the end (default: iters // 4)
#   batch: 4                      # images per step
#   crop: null                    # seg: training crop [H, W]; null: the data set's, 96x96 on synthetic-context
#                                 # (gan has res instead: its image size, 32 pixels)
#   lr: null                      # null: the task's learning rate for the data set (0.1 on synthetic-context)
# resources: {cpu: 1, gpu: 0}     # what each training trial holds; fractions share a GPU (gpu: 0.5)
# profile:                        # uncomment to measure each module's cost, alone, in a trial of its own
#   shape: [1, 512, 128, 128]     # the input, B, C, H, W
#   sweep: []                     # H = W sizes of an n-sweep with fitted exponents, e.g. [16, 32, 64]
#   device: cpu                   # cpu | cuda
#   dtype: fp32                   # fp32 | fp16 | bf16
#   mode: fwd                     # fwd | fwd+bwd
#   max_time: 10                  # seconds of timed runs per latency measurement, at most
#   sdpa_backend: null            # force one attention kernel: math | flash | efficient | cudnn
#   resources: {cpu: 1, gpu: 0}   # what each profiling trial holds
# metrics: []                     # metrics shown live while it runs, e.g. [mIoU, latency_ms]
# pareto: []                      # the report's fronts, e.g. [{x: model_macs, y: mIoU}]
# references: null                # published points: a CSV beside the suite, or a shipped one (references.csv)
# max_concurrent: null            # trials at a time (null: as many as the resources allow)
# max_failures: 2                 # retries of a trial after its node or worker died
# tune:                           # the tuning protocol (docs/suites.md, "Tuning"): the same search for every module,
#                                 # chosen on the validation split, retrained with the seeds and reported on test
#   space: {lr: {loguniform: [0.01, 0.5]}}  # shared by every module: budget or task-config fields (weight_decay, ...);
#                                 # {loguniform|uniform|randint: [low, high]} or {choice: [a, b]}
#   modules: {}                   # per module, over its own options, e.g. {ham-nmf: {train_steps: {randint: [3, 9]}}}
#   samples: 8                    # configurations per module, the same for every module
#   defaults_first: true          # sample 0 is the defaults
#   scheduler: asha               # asha (one ASHA per module) | fifo (every sample runs the whole budget)
#   grace: null                   # iterations before ASHA's first cut (null: iters // 4)
#   reduction: 3                  # ASHA keeps the best 1/reduction of a module's samples at each rung
#   metric: null                  # what selects, on validation (null: the task's headline, mIoU)
#   seed: 1000                    # draws the samples; sample i trains with seed 1000 + i (never a grid seed)
#   compare_defaults: true        # also retrain the defaults with the seeds: default vs tuned
"""


def suite_template(name: str) -> str:
    """The commented template of a new suite called ``name``."""
    return TEMPLATE.replace("@NAME@", name)


def _name_pattern() -> str:
    from hambench.suite import Suite  # the schema is the one home of what a name may be

    return next(m.pattern for m in Suite.model_fields["name"].metadata if getattr(m, "pattern", None))


def run_new(args: argparse.Namespace) -> int:
    from hambench.io import atomic_write_text

    name = args.name.removesuffix(".yaml").removesuffix(".yml")
    if not re.fullmatch(_name_pattern(), name):
        raise UserError(
            f"suite name {args.name!r}: use letters, digits, '.', '_' and '-' (starting with a letter or digit)"
        )
    path = args.out or Path(f"{name}.yaml")
    if path.exists():
        raise UserError(f"{path} exists; remove it or choose another --out")
    atomic_write_text(path, suite_template(name))
    print(
        f"wrote {path}: edit grid.modules, then `hambench suites show {path}` and `hambench run suite {path} --smoke`"
    )
    return 0
