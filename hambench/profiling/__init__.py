"""Cost of a context module or any model: params, MACs, latency, peak memory.

The measurement library; it knows nothing of model presets (their published figures are compared in
``hambench.models.cost``). By concept:

- ``counters``: parameters and one forward pass's MACs, per counting tool;
- ``analytic``: the FLOPs of ops the counters miss (selective scans, FFTs), as the modules that
  run them declare them (``analytic_flops``);
- ``timing``: latency (median and IQR over enough timed runs);
- ``measure``: ``measure`` (any ``model(x)``), ``profile_module`` (a registered context module),
  ``model_cost`` (a trained model, as trials record it);
- ``sweep``: ``profile_sweep``, the n-sweep and its fitted exponents (``hambench.scaling``);
- ``table``: rows to a DataFrame and to .parquet / .csv.

Counting tools disagree, so every row carries each one, side by side, under its own name:

- ``macs_fvcore``: fvcore's ``FlopCountAnalysis`` (one "flop" = one MAC); convs, matmul/bmm,
  linear, norms, upsampling; elementwise ops (mul, div, add, softmax, ...) are not counted.
- ``macs_torchprofile``: torchprofile's ``profile_macs``; as fvcore, but also counts ``mul``
  (not ``div``, ``add``, ``softmax``) and norms at one MAC per output element.
- ``flops_torch``: PyTorch's ``FlopCounterMode``: 2 FLOPs per MAC, matmuls and convs only.
- ``macs_mmcv`` (whole models only): old mmcv/mmseg ``get_flops.py`` module hooks, blind to
  functional calls such as ``torch.bmm``; needed to reproduce some published tables.
- ``flops_analytic`` / ``analytic_ops``: the FLOPs (2 per MAC) that the model or its
  submodules declare with ``analytic_flops(shape)`` for ops no counter sees, summed over every call
  at the input shape it saw (0 / ``{}`` when none declares any); ``flops_total`` =
  ``flops_torch + flops_analytic``.

Ops that carry arithmetic but got no count from a counter are listed in ``uncounted_ops``
(``"counter:aten::op"``), never dropped silently. MACs are those of one forward pass with the
module in the state the ``mode`` uses (eval for ``fwd``, train for ``fwd+bwd``: Hamburger runs
``eval_steps`` vs ``train_steps`` iterations). Latency and peak memory cover the whole ``mode``.
See docs/conventions.md.
"""

from hambench.profiling.analytic import AnalyticFlops, analytic_columns
from hambench.profiling.counters import (
    DATA_MOVEMENT,
    count_fvcore,
    count_mmcv,
    count_params,
    count_torch_flops,
    count_torchprofile,
)
from hambench.profiling.measure import (
    DTYPES,
    MODEL_COST_MAX_TIME,
    MODES,
    PAPER_SHAPE,
    PROFILE_DEFAULTS,
    ProfileSettings,
    WithFixedInputs,
    device_name,
    environment_columns,
    measure,
    model_cost,
    profile_module,
    profile_row,
    resolve_setting,
    resolve_settings,
)
from hambench.profiling.sweep import profile_sweep
from hambench.profiling.table import to_frame, write_table
from hambench.profiling.timing import MIN_REPS, Latency, measure_latency, median_interval

__all__ = [
    "AnalyticFlops",
    "DATA_MOVEMENT",
    "DTYPES",
    "MIN_REPS",
    "MODEL_COST_MAX_TIME",
    "MODES",
    "PAPER_SHAPE",
    "PROFILE_DEFAULTS",
    "ProfileSettings",
    "WithFixedInputs",
    "analytic_columns",
    "count_fvcore",
    "count_mmcv",
    "count_params",
    "count_torch_flops",
    "count_torchprofile",
    "device_name",
    "environment_columns",
    "measure",
    "Latency",
    "measure_latency",
    "median_interval",
    "model_cost",
    "profile_module",
    "profile_row",
    "profile_sweep",
    "resolve_setting",
    "resolve_settings",
    "to_frame",
    "write_table",
]
