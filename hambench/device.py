"""Which device a run uses: the one reading of ``device="auto" | "cpu" | "cuda"`` for every task,
the profiler and the suite runner. It always returns a ``torch.device``; a caller that needs the
kind compares ``.type`` (``"cpu"`` or ``"cuda"``), one that records it writes ``str(device)``."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")  # what a command line or a config may say


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when torch sees a GPU, else the CPU; ``"cpu"`` and ``"cuda"`` (or
    ``"cuda:N"``, or a ``torch.device``) as given, once checked that torch can use them. A
    ValueError says what is wrong."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but torch sees no CUDA device")
    return resolved
