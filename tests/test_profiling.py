"""Cost measurement: exact counts on modules whose cost is known by hand, the n x n attention map
in the peak memory, bmm counted by every counter, exponents of the n-sweep, the CLI."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
import torch
from torch import nn

from hambench.cli.main import main
from hambench.memory import LiveTensorBytes, peak_memory
from hambench.profiling import (
    MIN_REPS,
    fit_exponent,
    measure,
    measure_latency,
    parse_shape,
    profile_module,
    profile_sweep,
    to_frame,
    write_table,
)

ROW_KEYS = {
    "module", "shape", "device", "device_name", "dtype", "mode", "threads", "torch_version", "params",
    "macs_fvcore", "macs_torchprofile", "flops_torch", "latency_ms", "latency_iqr_ms", "peak_mem_bytes",
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


def test_latency_median_and_iqr():
    median, iqr, reps = measure_latency(lambda: torch.ones(64, 64) @ torch.ones(64, 64), torch.device("cpu"), min_time=0.05, max_time=0.5)
    assert median > 0 and iqr >= 0 and reps >= MIN_REPS


def test_latency_never_takes_fewer_than_min_reps_and_is_in_ms():
    """With no time to spend, exactly the minimum of timed runs; a call that sleeps 3 ms takes at least 3 ms."""
    median, iqr, reps = measure_latency(lambda: time.sleep(0.003), torch.device("cpu"), min_time=0.0, max_time=0.0)
    assert reps == MIN_REPS
    assert median >= 3.0 and iqr >= 0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="dtype"):
        profile_module("none", shape=(1, 8, 4, 4), dtype="fp64")
    with pytest.raises(ValueError, match="mode"):
        profile_module("none", shape=(1, 8, 4, 4), mode="bwd")
    with pytest.raises(ValueError, match="B, C, H, W"):
        profile_module("none", shape=(8, 4, 4))
    with pytest.raises(ValueError, match="integers"):
        parse_shape("1,a,3,4")
    assert parse_shape("1x512x128x128") == parse_shape("1,512,128,128") == (1, 512, 128, 128)


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
