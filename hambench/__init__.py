"""hambench: how global-context modules compare on accuracy and cost."""

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

__all__ = [
    "ModuleSpec",
    "RegistryError",
    "build_module",
    "get_spec",
    "list_modules",
    "load_plugin",
    "module_names",
    "register_module",
    "__version__",
]
