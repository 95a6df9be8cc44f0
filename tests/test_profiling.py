"""Cost measurement: exact counts on modules whose cost is known by hand, the n x n attention map
in the peak memory, bmm counted by every counter, exponents of the n-sweep, the CLI."""

from __future__ import annotations

import gc
import json
import math
import time

import pandas as pd
import pytest
import torch
from torch import nn

from hambench.cli.main import main
from hambench.memory import LiveTensorBytes, peak_memory
from hambench.profiling import (
    MIN_REPS,
    count_fvcore,
    count_mmcv,
    measure,
    measure_latency,
    median_interval,
    profile_module,
    profile_sweep,
    to_frame,
    write_table,
)
from hambench.scaling import fit_exponent

ROW_KEYS = {
    "module",
    "shape",
    "device",
    "device_name",
    "dtype",
    "mode",
    "threads",
    "torch_version",
    "params",
    "macs_fvcore",
    "macs_torchprofile",
    "flops_torch",
    "flops_analytic",
    "flops_total",
    "analytic_ops",
    "latency_ms",
    "latency_iqr_ms",
    "peak_mem_bytes",
    "uncounted_ops",
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_conv_counts_are_exact_and_agree():
    # A 3x3 conv C_in -> C_out on H x W (padding 1): C_out * H * W * C_in * 9 MACs.
    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)
    row = measure(conv, torch.randn(1, 8, 10, 12), latency=False)
    macs = 16 * 10 * 12 * 8 * 9
    assert row["macs_fvcore"] == macs
    assert row["macs_torchprofile"] == macs
    assert row["flops_torch"] == 2 * macs
    # Peak memory of one inference call: exactly the output (the input existed before).
    assert row["peak_mem_bytes"] == 16 * 10 * 12 * 4


def test_fwd_bwd_counts_backward_and_gradients():
    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)
    row = measure(conv, torch.randn(1, 8, 10, 12), mode="fwd+bwd", latency=False)
    # Backward of a conv: gradient w.r.t. the input and w.r.t. the weight, each as costly as the forward.
    assert row["flops_torch_fwd_bwd"] == 3 * row["flops_torch"]
    # The output dies after .sum(); then the input's and the weight's gradients live together.
    grads = (8 * 10 * 12 + 16 * 8 * 9) * 4
    assert grads <= row["peak_mem_bytes"] < grads + 16 * 10 * 12 * 4


def test_module_row_has_every_column():
    row = profile_module("nonlocal", shape=(1, 16, 8, 8), max_time=0.05)
    assert ROW_KEYS <= set(row)
    assert row["shape"] == "1x16x8x8"
    assert row["params"] == sum(p.numel() for p in __import__("hambench").build_module("nonlocal", 16).parameters())
    assert row["latency_ms"] > 0 and row["latency_iqr_ms"] >= 0 and row["latency_reps"] >= MIN_REPS
    assert row["threads"] == 1 and row["torch_version"] == torch.__version__


def test_attention_peak_memory_holds_the_n_by_n_map():
    # n = 64 * 64 = 4096 pixels: one fp32 n x n attention map is 64 MiB, far above the rest at C = 16.
    n = 64 * 64
    row = profile_module("nonlocal", shape=(1, 16, 64, 64), latency=False)
    assert row["peak_mem_bytes"] >= n * n * 4
    assert row["peak_mem_bytes"] < 3 * n * n * 4  # the map and its softmax at most, not a leak


def test_hamburger_bmm_counted_by_every_counter():
    row = profile_module("ham-nmf", shape=(1, 32, 16, 16), latency=False, memory=False, breakdown=True)
    bd = row["breakdown"]
    assert bd["fvcore"]["bmm"] > 0
    assert bd["fvcore"]["bmm"] == bd["torchprofile"]["bmm"]
    assert bd["torch"]["bmm"] == 2 * bd["fvcore"]["bmm"]
    # torchprofile does not count division (the NMF multiplicative update divides): listed, not hidden.
    assert "torchprofile:aten::div" in row["uncounted_ops"]
    assert "fvcore:aten::mul" in row["uncounted_ops"]


def test_sweep_exponents_attention_quadratic_hamburger_linear():
    rows, attn = profile_sweep("nonlocal", [16, 24, 32], shape=(1, 8, 16, 16), latency=False)
    assert [r["sweep_size"] for r in rows] == [16, 24, 32]
    assert 1.8 < attn["macs"].k < 2.05
    assert 1.7 < attn["memory"].k < 2.05
    assert attn["latency"].k is None  # latency=False: nothing to fit, no exponent
    assert rows[0]["exponent_macs"] == attn["macs"].k and rows[0]["exponent_macs_n_max"] == 32 * 32
    _, ham = profile_sweep("ham-nmf", [16, 24, 32], shape=(1, 32, 16, 16), latency=False)
    assert 0.9 < ham["macs"].k < 1.1
    assert 0.8 < ham["memory"].k < 1.1


def test_fit_exponent_recovers_a_power_law():
    # The fit's own rules (timing floor, spread, range, R^2) are tested in test_honest_report.py.
    ns = [100, 400, 900, 1600]
    assert fit_exponent(ns, [3 * n**2 for n in ns]).k == pytest.approx(2.0)
    assert fit_exponent(ns, [5 * n for n in ns]).k == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two different sizes"):
        fit_exponent([4, 4], [1, 2])


def test_live_tensor_bytes_frees_dropped_tensors():
    with LiveTensorBytes() as tracker:
        a = torch.ones(1000)  # 4000 bytes
        b = a * 2  # 8000 alive
        del a, b
        c = torch.ones(500)  # 2000 alive
    assert tracker.peak == 8000
    assert tracker.current == 2000
    del c


def test_peak_memory_sees_coexisting_activations_only():
    def chain():
        x = torch.ones(1000) + 1  # 4000
        y = x * 2  # 8000 alive
        del x
        return y + 1  # y and the result: 8000

    assert peak_memory(chain, "cpu") == 8000


def test_latency_median_iqr_and_tail():
    median, iqr, reps, p90, p99 = measure_latency(
        lambda: torch.ones(64, 64) @ torch.ones(64, 64), torch.device("cpu"), min_time=0.05, max_time=0.5
    )
    assert median > 0 and iqr >= 0 and reps >= MIN_REPS
    assert median <= p90 <= p99


def test_the_tail_percentiles_see_a_stall_the_median_hides():
    """One call in ten sleeps 30 ms: the median stays near 0, p90 and p99 show the stall."""
    calls = iter(range(10**6))
    lat = measure_latency(
        lambda: time.sleep(0.03) if next(calls) % 10 == 9 else None, torch.device("cpu"), min_time=0.5, max_time=1.0
    )
    assert lat.reps >= 20 and lat.median_ms < 5 and lat.p99_ms >= 25


def test_latency_never_takes_fewer_than_min_reps_and_is_in_ms():
    """With no time to spend, exactly the minimum of timed runs; a call that sleeps 3 ms takes at least 3 ms."""
    median, iqr, reps, _, _ = measure_latency(
        lambda: time.sleep(0.003), torch.device("cpu"), min_time=0.0, max_time=0.0
    )
    assert reps == MIN_REPS
    assert median >= 3.0 and iqr >= 0


class _FakeClock:
    """A clock that moves only when a timed call says how long it took (no sleeping, no flakiness)."""

    def __init__(self, durations_ms):
        self.now, self.durations = 0.0, iter(durations_ms)

    def perf_counter(self) -> float:
        return self.now

    def time_call(self, fn) -> float:
        ms = next(self.durations)
        self.now += ms / 1e3
        return ms


def _fake_timing(monkeypatch, durations_ms) -> None:
    import hambench.profiling.timing as timing

    clock = _FakeClock(durations_ms)
    monkeypatch.setattr(timing, "time", clock)
    monkeypatch.setattr(timing, "_cpu_time_ms", clock.time_call)


def test_latency_stops_once_the_median_is_known_to_one_percent(monkeypatch):
    """Runs spread uniformly over 1.0-1.1 ms (IQR 5 % of the median): the median is known to ±1 %
    after about 90 of them, long before the 10 s ``max_time`` (10 000 runs) a spread rule would take."""
    g = torch.Generator().manual_seed(0)
    _fake_timing(monkeypatch, (1.0 + 0.1 * torch.rand(100_000, generator=g, dtype=torch.float64)).tolist())
    lat = measure_latency(lambda: None, torch.device("cpu"), min_time=0.0, max_time=10.0)
    assert 60 <= lat.reps <= 300
    assert lat.median_ms == pytest.approx(1.05, rel=0.01)
    assert gc.isenabled()


def test_latency_spends_min_time_then_at_most_max_time(monkeypatch):
    """Identical 1 ms runs are known at once, but timing goes on for ``min_time`` (0.5 s: 500 runs,
    the check spaced by 10 % may add a few); runs that never settle stop at ``max_time``."""
    _fake_timing(monkeypatch, [1.0] * 100_000)
    assert 500 <= measure_latency(lambda: None, torch.device("cpu"), min_time=0.5, max_time=10.0).reps <= 560
    _fake_timing(monkeypatch, [1.0, 2.0, 4.0, 8.0] * 25_000)  # the middle runs differ by 2x: never ±1 %
    assert measure_latency(lambda: None, torch.device("cpu"), min_time=0.0, max_time=1.0).reps in range(260, 275)


def test_median_interval_is_the_order_statistics_of_the_binomial_and_covers():
    """n = 100: ranks 40 and 61 (Conover's table); on skewed data the interval holds the true
    median in about 95 % of samples."""
    assert median_interval([float(i) for i in range(1, 101)]) == (40.0, 61.0)
    g = torch.Generator().manual_seed(0)
    samples = torch.empty(2000, 51, dtype=torch.float64).exponential_(generator=g)  # median ln 2
    covered = sum(low <= math.log(2) <= high for low, high in (median_interval(s.tolist()) for s in samples))
    assert 0.93 <= covered / len(samples) <= 0.99


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="dtype"):
        profile_module("none", shape=(1, 8, 4, 4), dtype="fp64")
    with pytest.raises(ValueError, match="mode"):
        profile_module("none", shape=(1, 8, 4, 4), mode="bwd")
    with pytest.raises(ValueError, match="B, C, H, W"):
        profile_module("none", shape=(8, 4, 4))
    with pytest.raises(TypeError, match="latncy"):  # a misspelt setting is not silently ignored
        profile_module("none", shape=(1, 8, 4, 4), latncy=False)


def test_table_written_atomically(tmp_path):
    rows = [profile_module("none", shape=(1, 8, 4, 4), latency=False)]
    df = to_frame(rows)
    for suffix in (".parquet", ".csv"):
        path = write_table(df, tmp_path / f"cost{suffix}")
        back = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
        assert back.loc[0, "module"] == "none" and back.loc[0, "macs_fvcore"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cost.csv", "cost.parquet"]  # no temp files left
    with pytest.raises(ValueError, match="parquet or .csv"):
        write_table(df, tmp_path / "cost.txt")


# ----------------------------------------------------------------------------- analytic FLOPs


class _Declares(nn.Module):
    """A 1x1 conv (every counter sees it) and an op no counter sees, whose FLOPs it declares."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + torch.fft.fft2(x).real

    def analytic_flops(self, shape: tuple[int, int, int, int]) -> dict[str, int]:
        b, c, h, w = shape
        return {"scan": 7 * b * c * h * w, "fft": 3 * b * c}


class _Pyramid(nn.Module):
    """A declaring block at full resolution, one on the 2x downsampled map, and a plain conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.full = _Declares(channels)
        self.coarse = _Declares(channels)
        self.plain = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.full(x)
        z = self.coarse(nn.functional.avg_pool2d(y, 2))
        return self.plain(y + nn.functional.interpolate(z, scale_factor=2.0))


def test_analytic_flops_summed_over_submodules_at_the_shape_each_sees():
    b, c, h, w = 2, 4, 8, 6
    n_full, n_half = h * w, (h // 2) * (w // 2)
    row = measure(_Pyramid(c), torch.randn(b, c, h, w), latency=False, memory=False)
    scan = 7 * b * c * (n_full + n_half)  # each block at its own input shape: 8x6, then 4x3
    fft = 3 * b * c * 2
    assert json.loads(row["analytic_ops"]) == {"fft": fft, "scan": scan}
    assert row["flops_analytic"] == scan + fft
    # FlopCounterMode counts the three 1x1 convs (2 FLOPs per MAC) and nothing of the declared ops.
    assert row["flops_torch"] == 2 * b * c * c * (n_full + n_half + n_full)
    assert row["flops_total"] == row["flops_torch"] + row["flops_analytic"]
    # A model without a declaring module: 0 and {} (the total is FlopCounterMode's alone).
    plain = measure(nn.Conv2d(c, c, 1, bias=False), torch.randn(b, c, h, w), latency=False, memory=False)
    assert (plain["flops_analytic"], plain["analytic_ops"]) == (0, "{}")
    assert plain["flops_total"] == plain["flops_torch"] == 2 * b * c * c * n_full
    # No hook is left behind: a later forward records nothing.
    model = _Pyramid(c)
    measure(model, torch.randn(b, c, h, w), latency=False, memory=False)
    assert not any(m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_registered_modules_rows_equal_their_formulas(mode):
    # gfnet, 2x3x8x16, n = 128: fft = 5 B C n log2 n = 5*2*3*128*7; spectral_filter = 6 B C H (W//2 + 1).
    row = profile_module("gfnet", shape=(2, 3, 8, 16), mode=mode, latency=False, memory=False)
    assert json.loads(row["analytic_ops"]) == {"fft": 26_880, "spectral_filter": 2_592}
    assert row["flops_analytic"] == 29_472
    assert row["flops_torch"] == 0  # no matmul or conv in gfnet's forward: FlopCounterMode counts nothing
    assert row["flops_total"] == 29_472
    # ss2d, 1x8x4x4: D = 2C = 16, N = 16, L = 16: selective_scan = B 4 D L (7N + 2) = 4*16*16*114.
    row = profile_module("ss2d", shape=(1, 8, 4, 4), mode=mode, latency=False, memory=False)
    assert json.loads(row["analytic_ops"]) == {"selective_scan": 116_736}
    assert row["flops_total"] == row["flops_torch"] + 116_736 and row["flops_torch"] > 0
    # A module that declares nothing: the empty value.
    none = profile_module("nonlocal", shape=(1, 8, 4, 4), mode=mode, latency=False, memory=False)
    assert (none["flops_analytic"], none["analytic_ops"], none["flops_total"]) == (0, "{}", none["flops_torch"])


def test_analytic_columns_survive_the_table_and_a_suites_cost_columns(tmp_path):
    from hambench.schema import COST_COLUMNS
    from hambench.tasks.profile import cost_columns

    rows = [profile_module(name, shape=(2, 3, 8, 16), latency=False, memory=False) for name in ("gfnet", "none")]
    for suffix in (".parquet", ".csv"):
        path = write_table(to_frame(rows), tmp_path / f"cost{suffix}")
        back = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
        assert list(back["flops_analytic"]) == [29_472, 0]
        assert list(back["flops_total"]) == [29_472, 0]
        assert [json.loads(v) for v in back["analytic_ops"]] == [{"fft": 26_880, "spectral_filter": 2_592}, {}]
    assert {"flops_analytic", "flops_total", "analytic_ops"} <= set(COST_COLUMNS)
    cost = cost_columns(rows[0])  # what a suite's profiling trial reports into results.parquet
    assert (cost["flops_analytic"], cost["flops_total"]) == (29_472, 29_472)


def test_cli_json_and_out(tmp_path, capsys):
    out = tmp_path / "cost.parquet"
    rc = main(["profile", "none", "nonlocal", "--shape", "1,16,8,8", "--no-latency", "--json", "--out", str(out)])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["module"] for r in rows] == ["none", "nonlocal"]
    assert ROW_KEYS <= set(rows[1])
    assert rows[1]["macs_fvcore"] > 0 and rows[1]["peak_mem_bytes"] > 0
    assert list(pd.read_parquet(out)["module"]) == ["none", "nonlocal"]


def test_cli_sweep_prints_exponents(capsys):
    rc = main(["profile", "nonlocal", "--shape", "1,8,8,8", "--sweep", "8,16", "--no-latency"])
    assert rc == 0
    assert "fitted exponent" in capsys.readouterr().out


def test_cli_rejects_unknown_module(capsys):
    assert main(["profile", "no-such-module", "--no-latency"]) == 2
    assert "no-such-module" in capsys.readouterr().err


# ----------------------------------------------------------------------------- compile, channels-last, mmcv


@pytest.mark.slow  # torch.compile's first CPU compile (inductor, a C++ build) takes tens of seconds
def test_compile_times_the_compiled_module_and_counts_stay_eager():
    from torch._dynamo.utils import counters

    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)
    x = torch.randn(1, 8, 10, 12)
    eager = measure(conv, x, memory=False, max_time=0.05)
    torch._dynamo.reset()
    counters.clear()
    compiled = measure(conv, x, memory=False, compile=True, max_time=0.05)
    assert counters["stats"]["unique_graphs"] >= 1  # the timed call went through torch.compile
    assert compiled["latency_ms"] > 0 and compiled["latency_reps"] >= MIN_REPS
    macs = 16 * 10 * 12 * 8 * 9  # as test_conv_counts_are_exact_and_agree: compiling changes no count
    for row in (eager, compiled):
        assert (row["macs_fvcore"], row["macs_torchprofile"], row["flops_torch"]) == (macs, macs, 2 * macs)
    torch._dynamo.reset()


class _Layouts(nn.Module):
    """A conv that records the memory format of every input it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return self.conv(x)


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_channels_last_runs_every_call_channels_last_with_the_same_counts(mode):
    macs = 16 * 10 * 12 * 8 * 9
    rows = {}
    for channels_last in (False, True):
        model = _Layouts()
        rows[channels_last] = measure(
            model, torch.randn(1, 8, 10, 12), mode=mode, channels_last=channels_last, max_time=0.05
        )
        # counters, peak-memory run and every timed call saw the layout asked for, the weight too
        assert model.seen and set(model.seen) == {channels_last}
        assert model.conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    for row in rows.values():
        assert (row["macs_fvcore"], row["macs_torchprofile"], row["flops_torch"]) == (macs, macs, 2 * macs)
    assert rows[True]["peak_mem_bytes"] == rows[False]["peak_mem_bytes"]  # same tensors, another layout


def test_channels_last_module_row_says_so():
    row = profile_module("nonlocal", shape=(1, 16, 8, 8), channels_last=True, latency=False)
    plain = profile_module("nonlocal", shape=(1, 16, 8, 8), latency=False)
    assert row["channels_last"] is True and plain["channels_last"] is False
    assert row["macs_torchprofile"] == plain["macs_torchprofile"] and row["params"] == plain["params"]


class _ConvThenBmm(nn.Module):
    """A conv (a module mmcv hooks) and a functional bmm (invisible to mmcv's module hooks)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).flatten(2)  # (B, 16, n)
        return torch.bmm(y, y.transpose(1, 2))  # (B, 16, 16): 16 * 16 * n MACs per image


def test_count_mmcv_counts_module_hooks_only_and_per_batch():
    model, n = _ConvThenBmm().eval(), 10 * 12
    conv_macs, bmm_macs = 16 * n * 8 * 9, 16 * 16 * n
    assert count_mmcv(model, torch.randn(1, 8, 10, 12)) == conv_macs  # the bmm is not seen
    assert count_mmcv(model, torch.randn(3, 8, 10, 12)) == 3 * conv_macs  # the whole batch, not one image
    with torch.no_grad():
        assert count_fvcore(model, torch.randn(1, 8, 10, 12))[0] == conv_macs + bmm_macs  # fvcore sees both
    assert not any(m._forward_hooks for m in model.modules())  # its hooks are removed: later runs are not counted


# ----------------------------------------------------------------------------- out of memory, the matrix


def test_out_of_memory_halves_the_batch_until_it_fits_and_says_so(monkeypatch):
    """As timm's benchmark: a batch the device cannot hold is halved and the row records it."""
    import importlib

    measure_module = importlib.import_module("hambench.profiling.measure")  # the module, not the function
    real = measure_module.profile_row
    tried = []

    def tight_device(model, x, *args, **kwargs):
        tried.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(measure_module, "profile_row", tight_device)
    row = profile_module("ham-nmf", shape=(8, 16, 8, 8), latency=False, memory=False)
    assert tried == [8, 4, 2]
    assert row["shape"] == "2x16x8x8" and row["oom_backoff_from"] == 8
    fits = profile_module("ham-nmf", shape=(2, 16, 8, 8), latency=False, memory=False)
    assert fits["oom_backoff_from"] is None

    monkeypatch.setattr(measure_module, "profile_row", lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError()))
    with pytest.raises(torch.OutOfMemoryError):  # batch 1 does not fit: nothing left to halve
        profile_module("ham-nmf", shape=(1, 16, 8, 8), latency=False, memory=False)


def test_the_matrix_is_every_precision_layout_and_compile():
    from hambench.cli.profile import matrix_settings

    cpu = matrix_settings({"device": "cpu", "max_time": 1.0})
    assert len(cpu) == 8 and all(s["max_time"] == 1.0 for s in cpu)
    assert {(s["dtype"], s["channels_last"], s["compile"]) for s in cpu} == {
        (d, layout, c) for d in ("fp32", "bf16") for layout in (False, True) for c in (False, True)
    }
    assert {s["dtype"] for s in matrix_settings({"device": "cuda"})} == {"fp32", "bf16", "fp16"}


@pytest.mark.slow  # four torch.compile builds
def test_profile_matrix_prints_one_row_per_setting(capsys):
    from hambench.cli.main import main

    assert (
        main(["profile", "ham-nmf", "--shape", "1,16,8,8", "--matrix", "--no-memory", "--max-time", "0.05", "--json"])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    settings = {(r["dtype"], r["channels_last"], r["compile"]) for r in rows}
    assert len(rows) == len(settings) >= 6  # a bf16 op without a CPU kernel may be skipped, named on stderr
    assert ("fp32", True, True) in settings and ("fp32", False, False) in settings
    assert all(r["latency_p99_ms"] >= r["latency_ms"] for r in rows)
