"""Peak memory of one call, measured, not estimated.

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was
  allocated before the call (the caching allocator's own count, including library workspaces).
- CPU: :class:`LiveTensorBytes`, a dispatch mode that sees every tensor an aten op returns and
  keeps the running sum of the bytes of the storages still alive (freed when Python drops the last
  reference to the storage). Its peak is the most bytes alive at once: activations that coexist,
  autograd's saved tensors, gradients. Kernel-internal scratch buffers (never returned as tensors)
  are not seen.

Both report the growth over what existed before the call: the input and the parameters are not
counted, everything the call allocates is.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorBytes(TorchDispatchMode):
    """Track the bytes of tensor storages created under this mode that are still alive.

    ``peak`` is the maximum of ``current`` over the mode's lifetime; ``ops`` is the set of aten
    ops that ran (``aten::name``), which the profiler uses to list ops a counter left out.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self.ops: set[str] = set()
        self._live: dict[int, int] = {}  # storage id -> bytes

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.ops.add(f"aten::{func.overloadpacket.__name__}")
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._track(t.untyped_storage())
        return out

    def _track(self, storage: torch.UntypedStorage) -> None:
        key = storage._cdata  # the C++ storage: views and in-place results share it
        if key in self._live:
            return
        nbytes = storage.nbytes()
        self._live[key] = nbytes
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)


def peak_memory(fn: Callable[[], Any], device: torch.device | str) -> int:
    """Run ``fn()`` once; return the peak bytes it allocated above the starting level."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        del result
        return torch.cuda.max_memory_allocated(device) - start
    with LiveTensorBytes() as tracker:
        result = fn()
    del result
    return tracker.peak
