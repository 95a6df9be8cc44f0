"""Whole-model presets: parameter counts against the published tables (no forward pass, no data),
the VAN backbone, and Light-Ham built from hambench parts against mmseg's own LightHamHead."""

from __future__ import annotations

import pytest
import torch

from hambench.models.presets import PRESETS, build_from_cfg, build_preset, lightham_van
from hambench.models.van import VAN
from hambench.profiling import count_params


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_params_match_published(name):
    published = PRESETS[name].published.params_m * 1e6
    ours = count_params(build_preset(name))
    assert abs(ours - published) / published < 0.02, f"{name}: {ours / 1e6:.3f}M vs published {published / 1e6}M"


@pytest.mark.parametrize("arch", ["tiny", "small", "base"])
def test_light_ham_from_hambench_parts_equals_mmseg_light_ham_head(arch):
    ours = build_from_cfg(lightham_van(arch)).decode_head
    reference = build_from_cfg(lightham_van(arch, reference_head=True)).decode_head
    assert type(ours).__name__ == "LightContextHead" and type(reference).__name__ == "LightHamHead"
    assert sorted(p.shape for p in ours.parameters()) == sorted(p.shape for p in reference.parameters())


# VAN-B0..B3 classification models (Guo et al. 2022, Table): 4.1M, 13.9M, 26.6M, 44.8M parameters,
# including a 1000-class linear head on the last stage.
@pytest.mark.parametrize("arch, published_m", [("tiny", 4.1), ("small", 13.9), ("base", 26.6), ("large", 44.8)])
def test_van_params_match_the_classification_paper(arch, published_m):
    backbone = count_params(VAN(arch))
    head = VAN.arch_settings[arch]["embed_dims"][-1] * 1000 + 1000
    assert round((backbone + head) / 1e6, 1) == published_m


def test_van_outputs_four_strided_maps():
    model = VAN("tiny", drop_path_rate=0.0).eval()
    model.init_weights()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 96))
    dims = VAN.arch_settings["tiny"]["embed_dims"]
    assert [tuple(o.shape) for o in outs] == [(2, d, 64 // s, 96 // s) for d, s in zip(dims, (4, 8, 16, 32))]
    assert all(torch.isfinite(o).all() for o in outs)


def test_van_out_indices_and_bad_arch():
    model = VAN("tiny", out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 256]
    with pytest.raises(ValueError, match="unknown arch 'huge'"):
        VAN("huge")
    with pytest.raises(ValueError, match="out_indices"):
        VAN("tiny", out_indices=(4,))


def test_van_registered_in_mmseg():
    from mmseg.registry import MODELS

    model = MODELS.build(dict(type="VAN", arch="small"))
    assert isinstance(model, VAN) and model.embed_dims == [64, 128, 320, 512]


def test_unknown_preset_is_named():
    with pytest.raises(KeyError, match="no-such-model"):
        build_preset("no-such-model")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lightham-van-tiny", "lightham-van-small", "lightham-van-base"])
def test_light_ham_macs_match_published(name):
    """torchprofile MACs at 512x512, eval mode, as the Light-Ham table (target: within 3 %)."""
    from hambench.models.cost import profile_model

    torch.set_num_threads(1)
    row = profile_model(name, size=(512, 512), latency=False, memory=False, mmcv=False)
    published = PRESETS[name].published.flops_g * 1e9
    assert abs(row["macs_torchprofile"] - published) / published < 0.03
    assert row["macs_published_convention"] == row["macs_torchprofile"]


@pytest.mark.slow
@pytest.mark.parametrize("name, leave_out", [("danet-r101", ("bmm", "matmul")), ("dnl-r101", ("bmm",))])
def test_r101_flops_match_published_at_2048x512(name, leave_out):
    """The pair that pins the convention (one fvcore pass each, about a minute): DANet's published
    count leaves out its attention products, DNL's counts its non-local matmul."""
    from hambench.models.cost import CONVENTIONS
    from hambench.models.presets import InferencePath
    from hambench.profiling import count_fvcore

    torch.set_num_threads(1)
    published = PRESETS[name].published
    assert CONVENTIONS[published.flops_convention] == "macs_fvcore_" + ("nomm" if "matmul" in leave_out else "nobmm")
    with torch.no_grad():
        total, by_op, _ = count_fvcore(InferencePath(build_preset(name)), torch.randn(1, 3, *published.flops_size))
    ours = total - sum(by_op.get(op, 0) for op in leave_out)
    assert abs(ours - published.flops_g * 1e9) / (published.flops_g * 1e9) < 0.03
