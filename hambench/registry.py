"""The registry of context modules.

A context module is a shape-preserving ``nn.Module`` (B, C, H, W) -> (B, C, H, W) whose constructor
takes ``channels`` plus keyword options. It joins the registry in one of three ways:

- ``@register_module("name", family=..., paper=..., complexity=...)`` on the class (the zoo does this);
- an entry point in the group ``hambench.modules`` whose target is imported (registering as it loads);
- ``load_plugin("path/to/file.py")`` (the CLI's ``--plugin``), which executes the file.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import nn

ENTRY_POINT_GROUP = "hambench.modules"
FAMILIES = ("hamburger", "attention", "none", "other")


@dataclass(frozen=True)
class ModuleSpec:
    """What the registry knows about one context module."""

    name: str
    cls: type[nn.Module]
    family: str
    paper: str
    complexity: str
    source: str  # "hambench", "entry-point:<dist>" or the plugin file's path
    defaults: dict[str, Any] = field(default_factory=dict)  # keyword options and their defaults

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "complexity": self.complexity,
            "paper": self.paper,
            "source": self.source,
            "class": f"{self.cls.__module__}.{self.cls.__qualname__}",
            "options": {k: _jsonable(v) for k, v in self.defaults.items()},
        }


class RegistryError(ValueError):
    """Unknown module name, unknown option, or a registration that breaks the rules."""


_REGISTRY: dict[str, ModuleSpec] = {}
_current_source = "hambench"
_loaded_builtin = False
_loaded_entry_points = False


def _jsonable(value: Any) -> Any:
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


def register_module(
    name: str, *, family: str, paper: str = "", complexity: str = "?"
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a context module under ``name``.

    ``family`` is one of ``hamburger``, ``attention``, ``none`` or ``other`` (it colours the
    reports); ``complexity`` is its cost in the number of pixels n, e.g. ``"O(n)"`` or ``"O(n^2)"``.
    """
    if family not in FAMILIES:
        raise RegistryError(f"module {name!r}: family must be one of {FAMILIES}, got {family!r}")

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise RegistryError(f"module {name!r}: {cls!r} is not an nn.Module subclass")
        spec = ModuleSpec(name, cls, family, paper, complexity, _current_source, _constructor_defaults(cls))
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


def load_plugin(path: str | Path) -> list[str]:
    """Execute a plugin file and return the names it registered."""
    global _current_source
    path = Path(path).resolve()
    if not path.is_file():
        raise RegistryError(f"plugin file not found: {path}")
    _ensure_loaded()
    module_name = f"hambench_plugin_{path.stem}_{abs(hash(str(path))) % 10**8}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so that pickling (Ray workers) can find the classes
    _current_source = str(path)
    try:
        spec.loader.exec_module(module)
    finally:
        _current_source = "hambench"
    return sorted(name for name, spec in _REGISTRY.items() if spec.source == str(path))


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
        raise RegistryError(f"unknown context module {name!r}; registered: {', '.join(module_names())}")
    return _REGISTRY[name]


def build_module(name: str, channels: int, **options: Any) -> nn.Module:
    """Build the registered module ``name`` for ``channels`` input channels."""
    spec = get_spec(name)
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()) or "(none)"
        raise RegistryError(f"module {name!r} has no option(s) {', '.join(unknown)}; valid options: {valid}")
    return spec.cls(channels, **options)
