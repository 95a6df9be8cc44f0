"""Command-line flags derived from a config dataclass, and the CLI's one reading of ``KEY=VALUE``.

``hambench train <task>`` takes one flag per field of the task's config dataclass (``SegConfig``,
``GanConfig``; hambench.cli.train): field ``eval_interval`` is ``--eval-interval``, with the field's
type, its default, and as help the field's ``metadata["help"]`` or else the comment after it in the
source. A field added to the dataclass is a flag with nothing else to write. Types map as:

- ``int``, ``float``, ``str`` (or ``X | None``): one value of that type;
- ``bool``: ``--flag`` / ``--no-flag``;
- ``tuple[int, int]``: an image size ``HxW`` (``96x64``; ``96`` for a square);
- other tuples: comma-separated values (``--betas 0,0.9``);
- ``dict``: repeatable ``KEY=VALUE`` pairs, each value a YAML scalar;
- ``list``: repeatable values.

A flag not given leaves the field to the dataclass's own default, so the config (not the parser)
decides every default, and its own checks word the errors.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# YAML 1.2's floats, which PyYAML (YAML 1.1) reads as strings when they have no dot: "1e-3".
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


# ----------------------------------------------------------------------------- KEY=VALUE


def parse_value(text: str) -> Any:
    """A value as a YAML scalar (``6`` -> 6, ``1e-3`` -> 0.001, ``false`` -> False, ``null`` ->
    None, ``[1, 2]`` -> [1, 2], anything else the string itself)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # not YAML (e.g. an unclosed bracket): the text as written
    if isinstance(value, str) and _FLOAT.fullmatch(text.strip()):
        return float(text)
    return value


def parse_key_value(pair: str) -> tuple[str, Any]:
    """``"rank=64"`` -> ``("rank", 64)``; the value is read by :func:`parse_value`. An argparse
    ``type``: a pair without ``=`` is refused in one line naming the flag."""
    key, sep, value = pair.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expects KEY=VALUE, e.g. rank=32; got {pair!r}")
    return key.strip(), parse_value(value)


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``["train_steps=6", "spatial=true"]`` -> ``{"train_steps": 6, "spatial": True}``."""
    return dict(parse_key_value(pair) for pair in pairs)


class KeyValueAction(argparse.Action):
    """A repeatable ``--flag KEY=VALUE``: the pairs gathered into one dict."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,  # (key, value): parse_key_value's pair
        option_string: str | None = None,
    ) -> None:
        key, value = values
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest, None) or {}), key: value})


def argument_type(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """``parse`` as an argparse ``type``: its ValueError becomes argparse's one-line usage error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert


# ----------------------------------------------------------------------------- config -> flags


def field_comments(cls: type) -> dict[str, str]:
    """The comment after each field of the dataclass ``cls`` in its source, by field name."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a frozen or generated class): no comments
        return {}
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    return {
        node.target.id: comments[node.end_lineno]
        for node in body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.end_lineno in comments
    }


def _unwrap_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def _tuple_parser(item_types: tuple[type, ...]) -> tuple[Callable[[str], Any], str]:
    """A parser of a fixed-length tuple field, and its metavar."""
    from hambench.shapes import parse_size

    if item_types == (int, int):
        return argument_type(parse_size, "size"), "HxW"

    def parse(text: str) -> tuple:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != len(item_types):
            raise ValueError(f"expects {len(item_types)} comma-separated values, got {text!r}")
        return tuple(t(p) for t, p in zip(item_types, parts))

    return argument_type(parse, "tuple"), ",".join(t.__name__.upper() for t in item_types)


def _default_text(field: dataclasses.Field) -> str | None:
    if field.default is not dataclasses.MISSING and field.default is not None:  # None: the comment says
        value = field.default
        return (
            "x".join(map(str, value))
            if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)
            else str(value)
        )
    return None  # None (the comment says what it means) or a default_factory (empty): nothing to show


def _argument(field: dataclasses.Field, tp: Any, help_text: str) -> dict[str, Any]:
    """argparse keyword arguments of one field's flag."""
    tp = _unwrap_optional(tp)
    origin = typing.get_origin(tp) or tp
    if tp is bool:
        return dict(action=argparse.BooleanOptionalAction, help=help_text)
    if origin is dict:
        return dict(
            action=KeyValueAction,
            type=parse_key_value,
            metavar="KEY=VALUE",
            help=(help_text + " " if help_text else "") + "(repeatable; values read as YAML scalars)",
        )
    if origin is list:
        (item,) = typing.get_args(tp) or (str,)
        return dict(action="append", type=item, help=(help_text + " " if help_text else "") + "(repeatable)")
    if origin is tuple:
        parse, metavar = _tuple_parser(typing.get_args(tp))
        return dict(type=parse, metavar=metavar, help=help_text)
    if tp in (int, float, str):
        return dict(type=tp, help=help_text)
    raise TypeError(f"config field {field.name}: no command-line form for type {tp!r}")


def add_config_arguments(
    parser: argparse.ArgumentParser,
    config: type,
    *,
    skip: Iterable[str] = (),
    required: Iterable[str] = (),
    aliases: Mapping[str, Iterable[str]] | None = None,
    choices: Mapping[str, Iterable[Any]] | None = None,
    help: Mapping[str, str] | None = None,
) -> None:
    """One flag per field of the dataclass ``config`` (less ``skip``), as the module docstring
    says. ``aliases``: more flag names of a field (names kept from earlier releases); ``choices``:
    the valid values of a field where they are known; ``help``: the help of a field the CLI
    explains its own way (a default it works out itself), over the field's comment."""
    hints = typing.get_type_hints(config)
    comments = field_comments(config)
    skip, required = set(skip), set(required)
    aliases, choices, help = aliases or {}, choices or {}, help or {}
    for field in dataclasses.fields(config):
        if field.name in skip or not field.init:
            continue
        text = help.get(field.name) or field.metadata.get("help") or comments.get(field.name, "")
        default = _default_text(field)
        if field.name not in help and default is not None and field.name not in required:
            text = f"{text} (default: {default})" if text else f"default: {default}"
        kwargs = _argument(field, hints[field.name], text.replace("%", "%%"))
        if field.name in choices:
            kwargs["choices"] = list(choices[field.name])
        flags = ["--" + field.name.replace("_", "-"), *aliases.get(field.name, ())]
        # SUPPRESS: a flag not given sets nothing, and the dataclass's default applies.
        parser.add_argument(
            *flags, dest=field.name, default=argparse.SUPPRESS, required=field.name in required, **kwargs
        )


def given_fields(config: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``config`` the command line set."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config) if hasattr(args, f.name)}


# ----------------------------------------------------------------------------- a parser built when used


class LazyParser(argparse.ArgumentParser):
    """A sub-command's parser whose arguments are added the first time it parses or prints its
    help: reading a task's config imports the task (torch, mmengine), which ``hambench --help``
    and every other command must not pay for."""

    populate: Callable[[argparse.ArgumentParser], None] | None = None

    def _populated(self) -> None:
        populate, self.populate = self.populate, None
        if populate is not None:
            populate(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._populated()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._populated()
        return super().format_help()

    def format_usage(self) -> str:
        self._populated()
        return super().format_usage()


def add_lazy_parser(
    subparsers: argparse._SubParsersAction,
    name: str,
    populate: Callable[[argparse.ArgumentParser], None],
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """``subparsers.add_parser(name, **kwargs)``, its arguments added by ``populate(parser)`` when
    it is first used."""
    parser_class = subparsers._parser_class  # argparse has no public way to pick one parser's class
    subparsers._parser_class = LazyParser
    try:
        parser = subparsers.add_parser(name, **kwargs)
    finally:
        subparsers._parser_class = parser_class
    parser.populate = populate
    return parser
