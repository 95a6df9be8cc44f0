"""hambench: how global-context modules compare on accuracy and cost."""

from typing import Any

from hambench.registry import (
    ModuleSpec,
    RegistryError,
    build_module,
    get_spec,
    list_modules,
    load_plugin,
    module_names,
    register_module,
)

__version__ = "0.1.0"

# Loaded on first use: `import hambench` stays light (the suite driver imports Ray and pandas).
_LAZY = {"run_suite": "hambench.tuning.api", "SuiteRun": "hambench.tuning.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hambench' has no attribute {name!r}")


__all__ = [
    "ModuleSpec",
    "RegistryError",
    "build_module",
    "get_spec",
    "list_modules",
    "load_plugin",
    "module_names",
    "register_module",
    "run_suite",
    "SuiteRun",
    "__version__",
]
