"""The registry of context modules.

A context module is a shape-preserving ``nn.Module`` (B, C, H, W) -> (B, C, H, W) whose constructor
takes ``channels`` plus keyword options. It joins the registry in one of three ways:

- ``@register_module("name", family=..., paper=..., complexity=...)`` on the class (the zoo does this);
- an entry point in the group ``hambench.modules`` whose target is imported (registering as it loads);
- ``load_plugin("path/to/file.py")`` (the CLI's ``--plugin``; ``load_plugins`` for several),
  which executes the file once per process (again only when it changed); a file that fails to
  import is one :class:`RegistryError` line.

A registration may also declare

- ``rules``: options whose default is worked out when the module is built, from the width
  ``channels`` and the other options (a :class:`DefaultRule`, e.g. Hamburger's rank r = d / 8);
- ``fixed`` (and ``hidden``): the class is a *variant* of its base class, the base's constructor
  with some settings fixed (and some options not offered), so a family of variants shares one
  constructor and one home for each default.

:func:`resolve_options` returns exactly the keyword options a module is built with.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

ENTRY_POINT_GROUP = "hambench.modules"
FAMILIES = ("hamburger", "attention", "none", "other")


@dataclass(frozen=True)
class DefaultRule:
    """An option's default that depends on the width, worked out each time the module is built.

    ``compute``'s parameter names say what it reads: ``channels`` (the width the module is built
    for) and any other option or fixed setting of the module, by name. For example Hamburger's
    rank, the paper's d = 8r::

        DefaultRule("(ham_channels or channels) // heads // 8, at least 1",
                    lambda channels, ham_channels, heads: max(1, (ham_channels or channels) // heads // 8))

    A value the user gives always wins over the rule.
    """

    description: str  # what `hambench modules list` shows in place of a value
    compute: Callable[..., Any]

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(inspect.signature(self.compute).parameters)

    def __call__(self, values: Mapping[str, Any]) -> Any:
        """The default, from ``values`` (``channels`` and the module's other settings by name)."""
        return self.compute(**{name: values[name] for name in self.inputs})

    def __repr__(self) -> str:  # error messages list options as name=default
        return f"<{self.description}>"


@dataclass(frozen=True)
class ModuleSpec:
    """What the registry knows about one context module."""

    name: str
    cls: type[nn.Module]
    family: str
    paper: str
    complexity: str
    source: str  # "hambench", "entry-point:<dist>" or the plugin file's path
    # Keyword options and their defaults: a value, or a DefaultRule worked out at build time.
    defaults: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)  # a variant's settings of its base class

    @property
    def rules(self) -> dict[str, DefaultRule]:
        """The options whose default is a rule of the width."""
        return {k: v for k, v in self.defaults.items() if isinstance(v, DefaultRule)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "complexity": self.complexity,
            "paper": self.paper,
            "source": self.source,
            "class": f"{self.cls.__module__}.{self.cls.__qualname__}",
            "options": {k: _jsonable(v) for k, v in self.defaults.items()},
            "fixed": {k: _jsonable(v) for k, v in self.fixed.items()},
        }


class RegistryError(ValueError):
    """Unknown module name, unknown option, or a registration that breaks the rules."""


_REGISTRY: dict[str, ModuleSpec] = {}
_current_source = "hambench"
_loaded_builtin = False
_loaded_entry_points = False


def _jsonable(value: Any) -> Any:
    if isinstance(value, DefaultRule):
        return f"rule: {value.description}"
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _constructor_defaults(cls: type[nn.Module]) -> dict[str, Any]:
    """Keyword options of ``cls.__init__`` after ``channels``, with their defaults."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    if not params or params[0].name != "channels":
        raise RegistryError(
            f"{cls.__qualname__}.__init__ must take `channels` as its first argument, "
            f"got ({', '.join(p.name for p in params)})"
        )
    defaults = {}
    for p in params[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise RegistryError(
                f"{cls.__qualname__}.__init__: option `{p.name}` needs a default value "
                "(every option after `channels` is a keyword option)"
            )
        defaults[p.name] = p.default
    return defaults


def _bind_fixed(cls: type[nn.Module], fixed: Mapping[str, Any], offered: Iterable[str]) -> None:
    """Give the variant ``cls`` a constructor: its base's, with the ``fixed`` settings passed and
    only the ``offered`` options accepted (its signature lists exactly those, for help() and us)."""
    base_init = cls.__init__  # inherited: the base's constructor
    signature = inspect.signature(base_init)
    offered = set(offered)
    params = [p for p in signature.parameters.values() if p.name in ("self", "channels") or p.name in offered]

    def __init__(self: nn.Module, channels: int, **options: Any) -> None:
        refused = sorted(set(options) - offered)
        if refused:
            raise TypeError(
                f"{cls.__qualname__}() got unexpected option(s) {', '.join(refused)}; "
                f"its options: {', '.join(p.name for p in params[2:])}"
            )
        base_init(self, channels, **fixed, **options)

    __init__.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = base_init.__doc__
    cls.__init__ = __init__  # type: ignore[method-assign]


def _variant_defaults(
    name: str, cls: type[nn.Module], fixed: Mapping[str, Any], hidden: Iterable[str]
) -> dict[str, Any]:
    """The options a variant offers: its base constructor's, less the fixed and hidden ones."""
    if "__init__" in vars(cls):
        raise RegistryError(
            f"module {name!r}: a variant (fixed=...) is built by its base class's constructor; "
            f"remove {cls.__qualname__}.__init__ or drop fixed="
        )
    base = _constructor_defaults(cls)
    strangers = sorted((set(fixed) | set(hidden)) - set(base))
    if strangers:
        raise RegistryError(
            f"module {name!r}: {', '.join(strangers)} not option(s) of the base constructor; "
            f"its options: {', '.join(base)}"
        )
    return {k: v for k, v in base.items() if k not in fixed and k not in hidden}


def _attach_rules(
    name: str, defaults: dict[str, Any], fixed: Mapping[str, Any], rules: Mapping[str, DefaultRule]
) -> dict[str, Any]:
    """``defaults`` with each rule in place of its option's default. A rule that reads only fixed
    settings has one value for the variant: it is worked out now, so listings show the number."""
    defaults = dict(defaults)
    for option, rule in rules.items():
        if not isinstance(rule, DefaultRule):
            raise RegistryError(f"module {name!r}: rules[{option!r}] must be a DefaultRule, got {rule!r}")
        if option not in defaults:
            raise RegistryError(
                f"module {name!r}: rule for {option!r}, which is not one of its options ({', '.join(defaults)})"
            )
        readable = {"channels"} | set(fixed) | {k for k in defaults if k not in rules}
        unreadable = sorted(set(rule.inputs) - readable)
        if unreadable:
            raise RegistryError(
                f"module {name!r}: the rule for {option!r} reads {', '.join(unreadable)}; a rule may read "
                "`channels`, fixed settings and options whose default is a plain value"
            )
        defaults[option] = rule(fixed) if set(rule.inputs) <= set(fixed) else rule
    return defaults


def register_module(
    name: str,
    *,
    family: str,
    paper: str = "",
    complexity: str = "?",
    rules: Mapping[str, DefaultRule] | None = None,
    fixed: Mapping[str, Any] | None = None,
    hidden: Iterable[str] = (),
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a context module under ``name``.

    ``family`` is one of ``hamburger``, ``attention``, ``none`` or ``other`` (it colours the
    reports); ``complexity`` is its cost in the number of pixels n, e.g. ``"O(n)"`` or ``"O(n^2)"``.

    ``rules`` maps options to a :class:`DefaultRule`: their default is worked out from the width
    when the module is built (see :func:`resolve_options`).

    ``fixed`` makes the class a variant of its base class: it defines no constructor, the base's
    runs with the ``fixed`` settings, and the variant offers the base's other options, less
    ``hidden`` (options it has no use for; they keep the base's defaults).
    """
    if family not in FAMILIES:
        raise RegistryError(f"module {name!r}: family must be one of {FAMILIES}, got {family!r}")
    fixed, hidden = dict(fixed or {}), tuple(hidden)
    if hidden and not fixed:
        raise RegistryError(f"module {name!r}: hidden= is for variants; give the fixed settings too (fixed=...)")

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise RegistryError(f"module {name!r}: {cls!r} is not an nn.Module subclass")
        if fixed:
            defaults = _variant_defaults(name, cls, fixed, hidden)
            _bind_fixed(cls, fixed, defaults)
        else:
            defaults = _constructor_defaults(cls)
        defaults = _attach_rules(name, defaults, fixed, rules or {})
        spec = ModuleSpec(name, cls, family, paper, complexity, _current_source, defaults, fixed)
        old = _REGISTRY.get(name)
        if old is not None and old.cls.__qualname__ != cls.__qualname__:
            raise RegistryError(
                f"module name {name!r} is taken by {old.cls.__module__}.{old.cls.__qualname__} "
                f"(from {old.source}); choose another name"
            )
        _REGISTRY[name] = spec  # re-registering the same class (a re-imported plugin) is harmless
        return cls

    return decorator


def _load_builtin() -> None:
    global _loaded_builtin
    if not _loaded_builtin:
        _loaded_builtin = True
        importlib.import_module("hambench.modules")  # the zoo registers itself on import


def load_entry_points() -> None:
    """Import every module advertised in the ``hambench.modules`` entry-point group."""
    global _loaded_entry_points, _current_source
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        _current_source = f"entry-point:{dist}"
        try:
            ep.load()
        except Exception as exc:  # a broken third-party package must not hide the zoo
            print(f"hambench: entry point {ep.name!r} ({ep.value}) failed to load: {exc}", file=sys.stderr)
        finally:
            _current_source = "hambench"


@dataclass(frozen=True)
class _LoadedPlugin:
    """A plugin file this process executed: its bytes' digest then, and the specs it registered."""

    digest: str
    specs: tuple[ModuleSpec, ...]


# Plugin files executed in this process, by resolved path. One run's path asks for the same files
# several times (the CLI, the suite driver, each trial, the task's training loop): a file loaded
# already and unchanged since is not executed again.
_PLUGINS: dict[Path, _LoadedPlugin] = {}


def load_plugin(path: str | Path) -> list[str]:
    """Execute a plugin file, once per process, and return the names it registered. A file
    already loaded here whose bytes are unchanged is not executed again (its registrations stand);
    a changed file is executed again, and what its old version registered is forgotten first.
    A file that raises while it is imported is a RegistryError of one line: the file, the
    exception's type and message, the line."""
    path = Path(path).resolve()
    if not path.is_file():
        raise RegistryError(f"plugin file not found: {path}")
    _ensure_loaded()
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    loaded = _PLUGINS.get(path)
    if loaded is not None and loaded.digest == digest and _still_registered(loaded.specs):
        return sorted(spec.name for spec in loaded.specs)
    _forget_plugin(path)  # its old version's registrations, or those of a load that was undone
    _execute_plugin(path)
    specs = tuple(spec for spec in _REGISTRY.values() if spec.source == str(path))
    _PLUGINS[path] = _LoadedPlugin(digest, specs)
    return sorted(spec.name for spec in specs)


def _still_registered(specs: Iterable[ModuleSpec]) -> bool:
    """Whether each spec is still in the registry as registered (not put back by a scope since)."""
    return all(_REGISTRY.get(spec.name) is spec for spec in specs)


def _forget_plugin(path: Path) -> None:
    """Remove the plugin file ``path`` from this process: its entry and what it registered."""
    _PLUGINS.pop(path, None)
    for name in [name for name, spec in _REGISTRY.items() if spec.source == str(path)]:
        del _REGISTRY[name]


def _execute_plugin(path: Path) -> None:
    """Import the file ``path`` as a module, its registrations sourced to it; a failure undoes
    them and is one RegistryError line."""
    global _current_source
    # A digest of the path, not hash() (salted per process): every process that loads this file,
    # the driver and each Ray worker, gives it the same module name.
    module_name = f"hambench_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so that pickling (Ray workers) can find the classes
    _current_source = str(path)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: say what broke, where, in one line
        sys.modules.pop(module_name, None)
        _forget_plugin(path)  # what it registered before it broke goes with it
        raise RegistryError(_plugin_failure(path, exc)) from None
    finally:
        _current_source = "hambench"


def load_plugins(paths: Iterable[str | Path]) -> list[str]:
    """Load each plugin file in turn (the CLI's ``--plugin`` files, a trial's ``plugins``);
    return every name they registered."""
    return [name for path in paths for name in load_plugin(path)]


def _plugin_failure(path: Path, exc: BaseException) -> str:
    """``plugin FILE failed to import: TYPE: message (line N)``, on one line."""
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename) == path:
        line, text = exc.lineno, exc.msg  # str(exc) repeats the file and line
    else:
        line, text = None, str(exc)
        for frame in traceback.extract_tb(exc.__traceback__):
            if Path(frame.filename) == path:
                line = frame.lineno  # the deepest line of the plugin file itself
    message = " ".join(text.split())  # one line whatever the exception printed
    where = f" (line {line})" if line else ""
    return f"plugin {path} failed to import: {type(exc).__name__}: {message}{where}"


@contextmanager
def scoped_registry() -> Iterator[None]:
    """Registrations inside the block (toy modules of a test, plugins it loads) are undone after
    it: the registry is put back as it was, the zoo and entry points loaded, and a plugin first
    loaded inside the block counts as not loaded after it (loading it again executes it)."""
    _ensure_loaded()  # loaded now, so that a first load inside the block is not undone with it
    saved, saved_plugins = dict(_REGISTRY), dict(_PLUGINS)
    try:
        yield
    finally:
        _REGISTRY.clear()
        _REGISTRY.update(saved)
        _PLUGINS.clear()
        _PLUGINS.update(saved_plugins)


def _ensure_loaded() -> None:
    _load_builtin()
    load_entry_points()


def list_modules() -> list[ModuleSpec]:
    """Every registered module, sorted by family then name."""
    _ensure_loaded()
    return sorted(_REGISTRY.values(), key=lambda s: (FAMILIES.index(s.family), s.name))


def module_names() -> list[str]:
    return [s.name for s in list_modules()]


def get_spec(name: str) -> ModuleSpec:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise RegistryError(f"unknown context module {name!r}; valid modules: {', '.join(module_names())}")
    return _REGISTRY[name]


def check_options(name: str, options: Mapping[str, Any]) -> ModuleSpec:
    """The spec of module ``name`` once every key of ``options`` is one of its options: the one
    wording of the unknown-module and unknown-option errors (a RegistryError naming the valid ones)."""
    spec = get_spec(name)
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()) or "(none)"
        raise RegistryError(f"module {spec.name!r} has no option(s) {', '.join(unknown)}; valid options: {valid}")
    return spec


def resolve_options(name: str, channels: int, **options: Any) -> dict[str, Any]:
    """The keyword options the module ``name`` is built with at width ``channels``: its defaults,
    with the user's ``options`` over them and each remaining rule worked out (in the
    constructor's order). A fixed setting of a variant is not an option and is not included."""
    spec = check_options(name, options)
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise RegistryError(f"module {name!r}: channels must be a positive integer, got {channels!r}")
    values = {k: v for k, v in spec.defaults.items() if not isinstance(v, DefaultRule)} | options
    known = {"channels": channels, **spec.fixed, **values}
    for option, rule in spec.rules.items():
        if option not in options:
            try:
                values[option] = rule(known)
            except (ArithmeticError, TypeError, ValueError) as exc:  # a bad value of an option it reads
                given = ", ".join(f"{k}={known[k]!r}" for k in rule.inputs)
                raise RegistryError(
                    f"module {name!r}: cannot work out {option} ({rule.description}) from {given}: {exc}"
                ) from None
    return {k: values[k] for k in spec.defaults}


def build_module(name: str, channels: int, **options: Any) -> nn.Module:
    """Build the registered module ``name`` for ``channels`` input channels."""
    return get_spec(name).cls(channels, **resolve_options(name, channels, **options))
