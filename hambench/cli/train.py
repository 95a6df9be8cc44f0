"""``hambench train <task>``: one training run of a registered task, printing progress.

``hambench train seg --context ham-nmf --data synthetic-context --iters 300 --json`` prints the task's
progress lines and (with ``--json``) the final metrics as one JSON object on the last line. Every
training task the registry (``hambench.tasks``) holds with a ``command`` has a sub-command; its flags
are its config dataclass's fields (``hambench.cli.config_args``): a field added there is a flag here.
What only the task knows (required flags, the flags of earlier releases, the valid values, the help
of a default it works out itself, the run's folder name, the closing line) comes from its command.

The sub-commands are built when ``hambench train`` is used: listing the tasks imports them (torch,
mmengine), which ``hambench --help`` and every other command must not pay for.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from hambench.cli import UserError
from hambench.cli.config_args import add_config_arguments, add_lazy_parser, given_fields

if TYPE_CHECKING:
    from hambench.tasks import Task, TrainCommand

# What a task's config or data raises on a user's input (a bad value, a missing file or data root, an
# optional package not installed): a UserError, which hambench.cli.main prints as one line.
CONFIG_ERRORS = (FileNotFoundError, ImportError, ValueError)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    add_lazy_parser(
        sub,
        "train",
        partial(_add_task_parsers, common=common),
        help="one training run of a task (`hambench train --help` lists them)",
    )


def _add_task_parsers(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    from hambench.tasks import tasks

    train_sub = parser.add_subparsers(dest="train_command", required=True, metavar="TASK")
    for task in tasks():
        if task.trains and task.command is not None:
            p = add_lazy_parser(
                train_sub,
                task.name,
                partial(_task_arguments, task=task, command=task.command),
                parents=[common],
                help=task.command.help,
            )
            p.set_defaults(func=partial(run_command, task.name))


def _task_arguments(parser: argparse.ArgumentParser, task: Task, command: TrainCommand) -> None:
    assert task.config is not None  # a training task (Task checks it)
    add_config_arguments(
        parser,
        task.config,
        skip=("plugins",),
        required=command.required,
        aliases=command.aliases,
        choices=command.choices() if command.choices else None,
        help=command.help_of() if command.help_of else None,
    )
    parser.add_argument("--json", action="store_true", help="print the final metrics as one JSON line, last")


def run_command(task_name: str, args: argparse.Namespace) -> int:
    """Train the task's config as the flags give it (its ``plugins``, if it has that field: the
    --plugin files, which Ray workers load again); its ``work_dir`` is ``work_dirs/<task>/<run name>``
    unless ``--work-dir`` says otherwise."""
    from hambench.tasks import get_task

    task = get_task(task_name)
    command = task.command
    assert task.config is not None and task.train is not None and command is not None
    given = given_fields(task.config, args)
    if "plugins" in {f.name for f in dataclasses.fields(task.config)}:
        given["plugins"] = list(args.plugin)
    try:
        cfg = task.config(**given)
        if "work_dir" not in given and command.run_name is not None:
            cfg = replace(cfg, work_dir=f"work_dirs/{task.name}/{command.run_name(cfg)}")
        final: dict[str, Any] = task.train(cfg)
    except CONFIG_ERRORS as exc:
        raise UserError(str(exc)) from exc
    if args.json or command.summary is None:
        print(json.dumps(final), flush=True)
    else:
        print(f"done: {command.summary(final)}")
    return 0
