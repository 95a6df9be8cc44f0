"""A whole-model preset's cost beside its published Params/FLOPs, counted the way each was published.

The measurement is ``hambench.profiling``'s (it knows nothing of presets); what this adds is the
preset knowledge: which path the published FLOPs count (``InferencePath``), the mmcv count and the
fvcore variants that old tables used, and the convention each published figure was counted in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from hambench.models.presets import InferencePath, build_preset, get_preset
from hambench.profiling import ProfileSettings, count_mmcv, count_params, profile_row, resolve_settings
from hambench.shapes import shape_str

if TYPE_CHECKING:
    from typing_extensions import Unpack

# The counting conventions behind published tables (docs/conventions.md) -> our column.
CONVENTIONS = {
    "torchprofile": "macs_torchprofile",
    "fvcore": "macs_fvcore",
    "fvcore-nobmm": "macs_fvcore_nobmm",
    "fvcore-nomm": "macs_fvcore_nomm",
    "mmcv": "macs_mmcv",
}


def profile_model(
    preset: str,
    *,
    size: tuple[int, int] = (512, 512),
    batch: int = 1,
    mmcv: bool = True,
    **settings: Unpack[ProfileSettings],
) -> dict[str, Any]:
    """Profile a whole-model preset (``hambench.models.presets``) on a (batch, 3, H, W) image,
    measured as ``settings`` say (``hambench.profiling.ProfileSettings``, as ``profile_module``).

    The counted path is inference: backbone -> decode head(s) -> logits resized to the input
    (the auxiliary head does not run; its parameters count). Adds ``macs_mmcv`` (old mmseg
    get_flops.py hooks) and the preset's published params / FLOPs with their convention.
    """
    full, dev, torch_dtype = resolve_settings(settings)
    mode = full["mode"]
    published = get_preset(preset).published
    torch.manual_seed(full["seed"])
    segmentor = build_preset(preset)
    params = count_params(segmentor)  # before wrapping; the auxiliary head included
    model = InferencePath(segmentor).to(dev, torch_dtype)
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(full["seed"])).to(dev, torch_dtype)
    counts: dict[str, Any] = {}
    if mmcv:
        model.train(mode == "fwd+bwd")
        counts["macs_mmcv"] = count_mmcv(model, x)
    what = {"module": preset, "family": "model", "options": "{}"}
    # The breakdown is always measured: fvcore's per-op counts give the old conventions below.
    row = profile_row(model, x, what, {**full, "breakdown": True}, dev, params=params, counts=counts)
    fvcore_ops = row["breakdown"]["fvcore"] if full["breakdown"] else row.pop("breakdown")["fvcore"]
    # fvcore before bmm support (fvcore PR #51, Jan 2021): its total without the bmm ops; and
    # without any product of two activations (bmm and matmul), as the original DANet's bmm hid.
    row["macs_fvcore_nobmm"] = row["macs_fvcore"] - fvcore_ops.get("bmm", 0)
    row["macs_fvcore_nomm"] = row["macs_fvcore_nobmm"] - fvcore_ops.get("matmul", 0)
    at_published_size = tuple(size) == published.flops_size and batch == 1 and mode == "fwd"
    convention_column = CONVENTIONS[published.flops_convention]
    row["macs_published_convention"] = row.get(convention_column) if at_published_size else None
    row.update(
        {
            "published_params": published.params_m * 1e6,
            "published_macs": published.flops_g * 1e9,
            "published_size": shape_str(published.flops_size),
            "published_convention": published.flops_convention,
            "published_source": published.source,
        }
    )
    return row
