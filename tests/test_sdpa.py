"""Fused attention: ``nonlocal-sdpa`` is ``nonlocal`` to float tolerance, every counter counts SDPA,
the kernel that ran is named in each row, a forced backend runs or fails in one line, and the fused
kernel's peak memory is a fraction of the n x n map's."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend

from hambench.cli.main import main
from hambench.profiling import count_params, measure, profile_module
from hambench.registry import build_module, get_spec
from hambench.sdpa import BACKENDS, KERNELS, SDPABackendError, SDPAKernels, forced_backend, kernel_of, sdpa_macs
from hambench.suite import SuiteError, load_suite
from hambench.tuning.plan import expand
from test_zoo_mmseg import randomise

C = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def pair(**options) -> tuple[nn.Module, nn.Module]:
    """``nonlocal`` with random weights and ``nonlocal-sdpa`` holding the same state."""
    explicit = build_module("nonlocal", C, **options)
    randomise(explicit)
    fused = build_module("nonlocal-sdpa", C, **options)
    fused.load_state_dict(explicit.state_dict())  # same names, same shapes: no mapping needed
    return explicit, fused


class Attend(nn.Module):
    """Bare SDPA: the input is the query; fixed keys and values with S != L and Ev != E."""

    def __init__(self, key: torch.Tensor, value: torch.Tensor, transpose: bool = False) -> None:
        super().__init__()
        self.register_buffer("key", key)
        self.register_buffer("value", value)
        self.transpose = transpose

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        if self.transpose:  # a (.., L, E) view with stride L along E: fused kernels refuse it
            query = query.transpose(-1, -2).contiguous().transpose(-1, -2)
        return F.scaled_dot_product_attention(query, self.key, self.value)


# --------------------------------------------------------------------------------------------- the block


def test_same_parameters_and_complexity_declared():
    explicit, fused = pair()
    assert count_params(fused) == count_params(explicit)
    assert get_spec("nonlocal-sdpa").complexity == "O(n^2), O(n) memory"
    assert get_spec("nonlocal-sdpa").defaults == get_spec("nonlocal").defaults


@pytest.mark.parametrize("use_scale", [True, False])
@pytest.mark.parametrize("train", [False, True])
def test_equals_nonlocal_given_the_same_weights(use_scale, train):
    explicit, fused = pair(use_scale=use_scale)
    explicit.train(train)
    fused.train(train)
    x = torch.randn(2, C, 12, 20, generator=torch.Generator().manual_seed(1))  # non-square
    x1, x2 = x.clone().requires_grad_(train), x.clone().requires_grad_(train)
    y1, y2 = explicit(x1), fused(x2)
    torch.testing.assert_close(y2, y1, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(y1, x, atol=1e-3), "random weights: the block must not be the identity"
    if train:  # the backward through the fused kernel, and BN's batch statistics
        g = torch.randn_like(y1)
        (y1 * g).sum().backward()
        (y2 * g).sum().backward()
        # The fused backward recomputes the softmax blockwise: another float32 summation order.
        torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(fused.theta.weight.grad, explicit.theta.weight.grad, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(fused.out[1].running_var, explicit.out[1].running_var)


# --------------------------------------------------------------------------------------------- which kernel ran


def test_rows_name_the_kernel():
    shape = (1, C, 16, 16)
    assert profile_module("nonlocal-sdpa", shape=shape, latency=False)["sdpa_backend"] == "flash_attention_for_cpu"
    assert profile_module("nonlocal-sdpa", shape=shape, latency=False, mode="fwd+bwd")["sdpa_backend"] == (
        "flash_attention_for_cpu"
    )
    assert profile_module("nonlocal", shape=shape, latency=False)["sdpa_backend"] == ""  # no SDPA call
    forced = profile_module("nonlocal-sdpa", shape=shape, latency=False, sdpa_backend="math")
    assert forced["sdpa_backend"] == "math"
    assert profile_module("nonlocal-sdpa", shape=shape, latency=False, sdpa_backend="flash")["sdpa_backend"] == (
        "flash_attention_for_cpu"
    )


def test_silent_math_fallback_is_named():
    # Inputs whose last dimension is not contiguous: on CPU SDPA takes the math path without a word.
    key, value = torch.randn(2, 3, 14, 8), torch.randn(2, 3, 14, 8)
    query = torch.randn(2, 3, 10, 8)
    with SDPAKernels() as kernels, torch.no_grad():
        Attend(key, value)(query)
        Attend(key, value, transpose=True)(query)
    assert kernels.calls == ["flash_attention_for_cpu", "math"]
    assert kernels.backend == "flash_attention_for_cpu+math"


def test_kernel_names_are_this_torch_s_ops():
    # The CUDA kernels cannot run here; their names must still be real aten ops of this torch.
    for op in KERNELS:
        assert hasattr(torch.ops.aten, op), f"torch.ops.aten has no {op}"
    assert kernel_of(["_to_copy", "_scaled_dot_product_efficient_attention"]) == "efficient"
    assert kernel_of(["_scaled_dot_product_flash_attention"]) == "flash"
    assert kernel_of(["_scaled_dot_product_cudnn_attention"]) == "cudnn"
    assert kernel_of(["mul", "bmm", "_safe_softmax", "bmm"]) == "math"
    assert BACKENDS == {
        "math": SDPBackend.MATH,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }


# --------------------------------------------------------------------------------------------- forcing


@pytest.mark.parametrize("backend", ["efficient", "cudnn"])
def test_backend_that_cannot_run_is_one_clear_line(backend):
    with pytest.raises(SDPABackendError) as info:
        profile_module("nonlocal-sdpa", shape=(1, C, 8, 8), latency=False, sdpa_backend=backend)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("nonlocal-sdpa at 1x32x8x8: SDPA backend") and repr(backend) in message
    assert "on cpu" in message and "only `math` and `flash`" in message


def test_cli_forced_backend(capsys):
    assert main(["profile", "nonlocal-sdpa", "--shape", "1,16,8,8", "--no-latency", "--sdpa-backend", "cudnn"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hambench: error")]
    assert len(err) == 1 and "'cudnn' cannot run" in err[0]
    assert main(["profile", "nonlocal-sdpa", "--shape", "1,16,8,8", "--no-latency", "--sdpa-backend", "math"]) == 0
    assert "math" in capsys.readouterr().out


def test_cuda_reasons_become_the_message():
    # What CUDA does when the forced kernel refuses a call: warn each reason, then fail (stacklevel=1:
    # where a warning points does not matter, only its message).
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        with pytest.raises(SDPABackendError) as info, forced_backend("flash", "on cuda, float32, fwd"):
            warnings.warn("unrelated", UserWarning, stacklevel=1)
            warnings.warn("Flash attention kernel not used because:", UserWarning, stacklevel=1)
            warnings.warn(
                "Expected query, key and value to all be of dtype: {Half, BFloat16}.\nmore", UserWarning, stacklevel=1
            )
            raise RuntimeError("No available kernel. Aborting execution.")
    assert str(info.value) == (
        "SDPA backend 'flash' cannot run on cuda, float32, fwd: Flash attention kernel not used because:; "
        "Expected query, key and value to all be of dtype: {Half, BFloat16}."
    )
    assert [str(w.message) for w in leaked] == ["unrelated"]  # the reasons went into the message only


def test_other_errors_pass_through_and_names_are_checked():
    with pytest.raises(RuntimeError, match="something else"), forced_backend("math"):
        raise RuntimeError("something else")
    with pytest.raises(SDPABackendError, match="math, flash, efficient, cudnn"), forced_backend("fast"):
        pass


def test_suite_profile_section_takes_a_backend(tmp_path):
    text = """
        name: mini
        description: a test suite
        task: profile
        grid: {modules: [nonlocal-sdpa]}
        profile: {shape: [1, 32, 16, 16], sdpa_backend: BACKEND}
    """
    path = tmp_path / "suite.yaml"
    path.write_text(text.replace("BACKEND", "math"))
    (trial,) = expand(load_suite(path))
    assert trial.profile.sdpa_backend == "math"
    path.write_text(text.replace("BACKEND", "fast"))
    with pytest.raises(SuiteError, match="sdpa_backend"):
        load_suite(path)


# --------------------------------------------------------------------------------------------- counting


def test_every_counter_counts_sdpa_as_the_explicit_products():
    # batch 2, 3 heads, L = 10 queries of E = 8, S = 14 keys, values of Ev = 6.
    module = Attend(torch.randn(2, 3, 14, 8), torch.randn(2, 3, 14, 6))
    macs = 2 * 3 * 10 * 14 * (8 + 6)
    assert sdpa_macs((2, 3, 10, 8), (2, 3, 14, 8), (2, 3, 14, 6)) == macs
    for backend in (None, "math"):  # fused kernel, or its decomposition into bmm
        row = measure(module, torch.randn(2, 3, 10, 8), latency=False, memory=False, sdpa_backend=backend)
        assert row["macs_fvcore"] == macs
        assert row["macs_torchprofile"] == macs
        assert row["flops_torch"] == 2 * macs  # FlopCounterMode: 2 FLOPs per MAC
        assert not [op for op in row["uncounted_ops"] if "scaled_dot_product" in op]


def test_nonlocal_sdpa_macs_equal_nonlocal_s_in_all_three_counters():
    shape = (1, C, 24, 24)
    explicit = profile_module("nonlocal", shape=shape, latency=False, memory=False)
    fused = profile_module("nonlocal-sdpa", shape=shape, latency=False, memory=False)
    attention = 2 * 24**4 * (C // 2)  # 2·n²·d, the bulk of it
    for column in ("macs_fvcore", "macs_torchprofile", "flops_torch"):
        assert fused[column] == pytest.approx(explicit[column], rel=0.01), column
    assert fused["macs_fvcore"] > attention  # the attention counted, the convolutions on top


# --------------------------------------------------------------------------------------------- memory


def test_fused_peak_memory_is_a_fraction_of_the_map():
    # n = 64 x 64 at C = 16: one fp32 n x n map is 64 MiB, every (C, n) tensor 256 KiB.
    n = 64 * 64
    shape = (1, 16, 64, 64)
    explicit = profile_module("nonlocal", shape=shape, latency=False)["peak_mem_bytes"]
    fused = profile_module("nonlocal-sdpa", shape=shape, latency=False)["peak_mem_bytes"]
    math = profile_module("nonlocal-sdpa", shape=shape, latency=False, sdpa_backend="math")["peak_mem_bytes"]
    assert explicit >= n * n * 4 and math >= n * n * 4  # the map, materialised by both
    assert fused <= explicit / 4
    assert fused < n * n * 4 / 16
