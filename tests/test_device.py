"""``hambench.device.resolve_device``: the one reading of a run's device, always a torch.device."""

from __future__ import annotations

import pytest
import torch

from hambench.device import resolve_device


@pytest.mark.parametrize("cuda", [False, True])
def test_auto_is_cuda_where_torch_sees_a_gpu_else_the_cpu(monkeypatch, cuda: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_device("auto") == resolve_device() == torch.device("cuda" if cuda else "cpu")


def test_a_named_device_comes_back_as_a_torch_device(monkeypatch) -> None:
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and isinstance(resolve_device("cuda"), torch.device)


def test_a_device_torch_cannot_use_is_one_value_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        resolve_device("cuda")
    for wrong in ("gpu", "mps", "tpu:0"):
        with pytest.raises(ValueError, match="device must be auto, cpu or cuda"):
            resolve_device(wrong)
