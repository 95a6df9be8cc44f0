"""mmseg's registry, filled once: mmseg's own models, hambench's heads and VAN.

Both the trainable segmentors (``hambench.models.segmentor``) and the published presets
(``hambench.models.presets``) build through mmseg's ``MODELS``; this module is what they share,
so neither imports the other for it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import warnings

# What mmseg and mmcv print when first imported that says nothing to a hambench user: mmseg's
# data sets announce with print(), twice, that the optional OneDL package is absent; mmcv-lite
# warns that it lacks a CUDA op (multi-scale deformable attention) that hambench never runs.
IMPORT_NOISE_LINES = ("Could not import OneDL",)
IMPORT_NOISE_WARNING = "Fail to import ``MultiScaleDeformableAttention``"
# What mmseg warns every time it builds a cross-entropy loss: that its default averages over all
# pixels, ignored ones included. hambench keeps that default on purpose (the published recipes'),
# so the notice says nothing to a user; HAMBENCH_VERBOSE=1 (`--verbose`) shows it.
LOSS_NOTICE = "Default ``avg_non_ignore`` is False"
VERBOSE_ENV = "HAMBENCH_VERBOSE"


def import_mmseg() -> None:
    """Import mmseg's models and data sets without their import-time noise. Only that noise is
    dropped, only during this import: any other line they print still reaches stdout, and later
    warnings and logs are untouched. Call it before anything imports ``mmseg.datasets``."""
    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        warnings.filterwarnings("ignore", message=IMPORT_NOISE_WARNING)
        importlib.import_module("mmseg.models")
        importlib.import_module("mmseg.datasets")
    for line in printed.getvalue().splitlines(keepends=True):
        if line.strip() not in IMPORT_NOISE_LINES:
            sys.stdout.write(line)


def register_all(*, default_scope: bool = True) -> None:
    """Register mmseg's models and hambench's heads and VAN (idempotent).

    ``default_scope``: also make ``mmseg`` mmengine's default scope (a training run's Runner needs
    it; building a preset's model does not, and leaves the scope as it was).
    """
    import_mmseg()  # first: mmseg without its import noise
    if not os.environ.get(VERBOSE_ENV):
        warnings.filterwarnings("ignore", message=LOSS_NOTICE, category=UserWarning)
    from mmseg.utils import register_all_modules

    import hambench.models.heads  # noqa: F401  (registers ContextHead / LightContextHead)
    import hambench.models.van  # noqa: F401  (registers VAN)

    register_all_modules(init_default_scope=default_scope)
