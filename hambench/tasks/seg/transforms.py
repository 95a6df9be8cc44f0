"""``LoadOnce``: mmseg's loading transforms run once per image, their result kept in memory.

Importing this file registers ``LoadOnce`` in mmseg's ``TRANSFORMS``. A generated set is small
(1000 training images of 96x96: 37 MB decoded) and a trial reads each image about five times;
decoding its JPEG and PNG again at every step is most of what loading a batch costs. The random
transforms after it (the flip) still run on every step, on a copy, so a trial's batches, and
its results, are those of the uncached pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

# Decoded bytes kept per process at most; images past it are decoded on every read, as before.
CACHE_BYTES = 256 * 2**20


@TRANSFORMS.register_module()
class LoadOnce(BaseTransform):
    """Run ``loads`` (deterministic transforms: mmseg's ``LoadImageFromFile`` and
    ``LoadAnnotations``) the first time an image is read, and return a copy of that result after.

    Args:
        loads: the transforms' configs, in order.
        max_bytes: decoded arrays kept at most (``CACHE_BYTES``).
    """

    def __init__(self, loads: list[dict[str, Any]], max_bytes: int = CACHE_BYTES) -> None:
        self.loads = [TRANSFORMS.build(cfg) for cfg in loads]
        self.max_bytes = max_bytes
        self.cache: dict[str, dict[str, Any]] = {}
        self.cached_bytes = 0

    def transform(self, results: dict[str, Any]) -> dict[str, Any]:
        loaded = self.cache.get(results["img_path"])
        if loaded is None:
            loaded = dict(results)
            for load in self.loads:
                loaded = load(loaded)
            size = sum(v.nbytes for v in loaded.values() if isinstance(v, np.ndarray))
            if self.cached_bytes + size <= self.max_bytes:
                self.cache[results["img_path"]] = loaded
                self.cached_bytes += size
        return {**results, **{key: _copy(value) for key, value in loaded.items()}}


def _copy(value: Any) -> Any:
    """A copy of what a later transform may change in place (arrays, the list of seg fields)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    return list(value) if isinstance(value, list) else value
